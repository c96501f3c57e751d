package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/portcullis-io/portcullis/internal/devenv"
)

// SampleUser is the StaticToken in config/samples whose token dev prints.
const SampleUser = "bob"

// newDevCommand is the dev command; decisionLog is the operator's decision
// logger, set once the flags are read.
func newDevCommand(decisionLog *logr.Logger) *cobra.Command {
	var (
		stateDir  string
		samples   string
		ttl       time.Duration
		runtime   map[string]string
		verbosePl bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a real local etcd, kube-apiserver and kube-controller-manager wired to the operator (the local main job)",
		Long: `dev starts etcd, kube-apiserver and kube-controller-manager on loopback ports,
wired to an in-process Portcullis operator exactly as a cluster admin wires a
cluster (token webhook config file, AuthorizationConfiguration), applies the
samples, and prints how to use it. There is no kubelet or scheduler: pods stay
Pending. State lives in the state directory, so a second run reuses it.
Ctrl-C stops everything it started.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			abs, err := filepath.Abs(stateDir)
			if err != nil {
				return err
			}
			var out io.Writer
			if verbosePl {
				out = os.Stderr
			}
			fmt.Fprintf(os.Stderr, "starting etcd, kube-apiserver, kube-controller-manager and the operator (state in %s)...\n", abs)
			env, err := devenv.Start(ctx, devenv.Options{StateDir: abs, TokenCacheTTL: ttl, RuntimeConfig: runtime, Out: out, DecisionLog: *decisionLog})
			if err != nil {
				return err
			}
			defer func() {
				fmt.Fprintln(os.Stderr, "stopping...")
				if err := env.Stop(); err != nil {
					fmt.Fprintln(os.Stderr, "stop:", err)
				}
			}()
			admin := filepath.Join(abs, "admin.kubeconfig")
			if err := env.ControlPlane.WriteAdminKubeconfig(admin); err != nil {
				return err
			}
			if samples != "" {
				if err := env.ApplyDir(ctx, samples); err != nil {
					return fmt.Errorf("applying samples: %w", err)
				}
			}
			printUsage(ctx, env, abs, admin, samples != "")
			<-ctx.Done()
			return nil
		},
	}
	def := os.Getenv("PORTCULLIS_DEV_DIR")
	if def == "" {
		def = ".dev"
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", def, "State directory (etcd data, certificates, kubeconfigs); $PORTCULLIS_DEV_DIR overrides the default.")
	cmd.Flags().StringVar(&samples, "samples", "", "Directory of sample manifests to apply once the operator is ready.")
	cmd.Flags().DurationVar(&ttl, "token-cache-ttl", devenv.DefaultTokenCacheTTL, "The API server's token webhook cache TTL.")
	cmd.Flags().StringToStringVar(&runtime, "runtime-config", nil, "The operator's --runtime-config.")
	cmd.Flags().BoolVar(&verbosePl, "control-plane-logs", false, "Show etcd's, kube-apiserver's and kube-controller-manager's output.")
	return cmd
}

func printUsage(ctx context.Context, env *devenv.Env, dir, admin string, samples bool) {
	fmt.Printf(`
Portcullis is running, wired into a real kube-apiserver at %s

  admin kubeconfig:  %s
  webhooks:          %s/authenticate
  metrics:           https://%[4]s/metrics   readiness: http://%[5]s/readyz
    curl -k -H "Authorization: Bearer $(kubectl --kubeconfig %[2]s -n %[7]s create token %[8]s)" https://%[4]s/metrics

  export KUBECONFIG=%[6]s
  kubectl get statictokens,jwtauthenticators,accesspolicies
`, env.ControlPlane.APIServerURL(), admin, env.WebhookURL, env.MetricsAddr, env.ProbeAddr, admin, env.Namespace, devenv.MetricsReader)
	if samples {
		token, err := env.StaticToken(ctx, SampleUser, 30*time.Second)
		if err != nil {
			fmt.Printf("\n  (the sample user %s is not ready: %v)\n", SampleUser, err)
		} else {
			bob := filepath.Join(dir, SampleUser+".kubeconfig")
			if err := env.ControlPlane.WriteTokenKubeconfig(bob, token); err != nil {
				fmt.Printf("\n  (writing %s: %v)\n", bob, err)
			}
			fmt.Printf(`
  sample user %[1]s, authenticated by the Portcullis token webhook:
    token:       %[2]s
    kubeconfig:  %[3]s
    kubectl --kubeconfig %[3]s auth whoami
    kubectl --kubeconfig %[3]s get pods -n project-caribou     # allowed by AccessPolicy bob-reads-caribou-pods
    kubectl --kubeconfig %[3]s auth can-i delete pods -n project-caribou   # no
    curl -k -H "Authorization: Bearer %[2]s" %[4]s/apis/authentication.k8s.io/v1/selfsubjectreviews -X POST -H 'Content-Type: application/json' -d '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}'
`, SampleUser, token, bob, env.ControlPlane.APIServerURL())
		}
	}
	fmt.Println("\nPress Ctrl-C to stop.")
}
