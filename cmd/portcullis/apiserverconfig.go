package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
)

func newAPIServerConfigCommand() *cobra.Command {
	var (
		o             apiserverconfig.Options
		caFile        string
		outDir        string
		authorization bool
		authz         apiserverconfig.AuthorizationOptions
		failurePolicy string
	)
	cmd := &cobra.Command{
		Use:   "apiserver-config",
		Short: "Render the files that wire kube-apiserver to Portcullis, and print the flags that use them",
		Long: `apiserver-config writes the token webhook kubeconfig, the authorization
webhook kubeconfig and an AuthorizationConfiguration (apiserver.config.k8s.io/v1)
into --out-dir, and prints the kube-apiserver flags that read them. Copy the
files to --config-dir on each control-plane node.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caFile != "" {
				ca, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--ca-file: %w", err)
				}
				o.CABundle = ca
			}
			if authorization {
				authz.FailurePolicy = apiserverconfig.FailurePolicy(failurePolicy)
				o.Authorization = &authz
			}
			files, err := apiserverconfig.Write(outDir, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# wrote the wiring to %s; add these kube-apiserver flags:\n%s\n", outDir, strings.Join(files.APIServerFlags(), "\n"))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.URL, "url", "https://portcullis-webhook.portcullis-system.svc:443", "Base https URL at which kube-apiserver reaches the webhook server.")
	f.StringVar(&caFile, "ca-file", "", "PEM CA bundle that verifies the webhook server's certificate.")
	f.StringVar(&outDir, "out-dir", "portcullis-apiserver", "Directory to write the files to.")
	f.StringVar(&o.ConfigDir, "config-dir", "", "Directory kube-apiserver reads the files from, if not --out-dir (e.g. /etc/kubernetes/portcullis).")
	f.DurationVar(&o.TokenCacheTTL, "token-cache-ttl", 2*time.Minute, "How long kube-apiserver caches a token review.")
	f.BoolVar(&o.IncludeNodeAuthorizer, "node-authorizer", true, "Put the Node authorizer first (clusters with kubelets need it).")
	f.BoolVar(&authorization, "authorization", true, "Put the Portcullis authorizer (AccessPolicy) in the chain, before RBAC.")
	f.StringVar(&failurePolicy, "authorization-failure-policy", string(apiserverconfig.FailurePolicyNoOpinion), "What the API server does when the authorization webhook fails: NoOpinion (RBAC decides; Deny policies are lost while it is down) or Deny.")
	f.DurationVar(&authz.Timeout, "authorization-timeout", apiserverconfig.DefaultAuthorizationTimeout, "Timeout of one SubjectAccessReview call.")
	f.DurationVar(&authz.AuthorizedTTL, "authorized-ttl", apiserverconfig.DefaultAuthorizedTTL, "How long the API server caches an allowed answer.")
	f.DurationVar(&authz.UnauthorizedTTL, "unauthorized-ttl", apiserverconfig.DefaultUnauthorizedTTL, "How long the API server caches a denied or no-opinion answer.")
	f.StringVar(&authz.OperatorNamespace, "operator-namespace", apiserverconfig.DefaultOperatorNamespace, "The operator's namespace: its service account is never sent to the authorizer.")
	f.StringVar(&authz.OperatorServiceAccount, "operator-service-account", apiserverconfig.DefaultOperatorServiceAccount, "The operator's service account.")
	return cmd
}
