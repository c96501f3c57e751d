package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
	"github.com/portcullis-io/portcullis/internal/certs"
)

func newAPIServerConfigCommand() *cobra.Command {
	var (
		o             apiserverconfig.Options
		caFile        string
		outDir        string
		authorization bool
		authz         apiserverconfig.AuthorizationOptions
		failurePolicy string
		caKeyFile     string
		clientCert    string
		clientKey     string
		withClient    bool
	)
	cmd := &cobra.Command{
		Use:   "apiserver-config",
		Short: "Render the files that wire kube-apiserver to Portcullis, and print the flags that use them",
		Long: `apiserver-config writes the token webhook kubeconfig, the authorization
webhook kubeconfig and an AuthorizationConfiguration (apiserver.config.k8s.io/v1)
into --out-dir, and prints the kube-apiserver flags that read them. Copy the
files to --config-dir on each control-plane node.

The operator answers /authenticate and /authorize only to the API server's
client certificate (its --authenticate-callers, on by default), so the
kubeconfigs carry one: issued under the webhook CA with --ca-key-file, or
given with --client-cert-file and --client-key-file. --admission-callers
also renders an AdmissionConfiguration that has the API server present it
to the admission webhooks (the operator's --authenticate-admission-callers).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caFile != "" {
				ca, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("--ca-file: %w", err)
				}
				o.CABundle = ca
			}
			switch {
			case clientCert != "" || clientKey != "":
				var err error
				if o.ClientCertificate, err = os.ReadFile(clientCert); err != nil {
					return fmt.Errorf("--client-cert-file: %w", err)
				}
				if o.ClientKey, err = os.ReadFile(clientKey); err != nil {
					return fmt.Errorf("--client-key-file: %w", err)
				}
				// What the operator will check, checked now rather than
				// found as a 401 in the API server's log.
				if len(o.CABundle) > 0 {
					if _, err := certs.VerifyClient(o.CABundle, o.ClientCertificate, o.ClientKey, app.APIServerClientName, time.Now()); err != nil {
						return fmt.Errorf("--client-cert-file is not a client certificate the operator accepts (common name %s, from the CA in --ca-file): %w", app.APIServerClientName, err)
					}
				}
			case !withClient:
			case caKeyFile != "":
				// Issue the API server's client certificate under the
				// webhook CA, so the operator (--authenticate-callers)
				// answers /authenticate and /authorize to it alone.
				key, err := os.ReadFile(caKeyFile)
				if err != nil {
					return fmt.Errorf("--ca-key-file: %w", err)
				}
				if o.ClientCertificate, o.ClientKey, err = certs.IssueClient(o.CABundle, key, app.APIServerClientName, time.Now()); err != nil {
					return fmt.Errorf("issuing the API server's client certificate (--ca-file, --ca-key-file): %w", err)
				}
			default:
				return errors.New("the operator answers /authenticate and /authorize only to the API server's client certificate: give --ca-file with --ca-key-file (the webhook CA's key) to issue one, or --client-cert-file and --client-key-file; --authenticate-callers=false renders the wiring without one, for an operator run with --authenticate-callers=false")
			}
			if o.AdmissionCallers && len(o.ClientCertificate) == 0 {
				return errors.New("--admission-callers needs the client certificate (--authenticate-callers)")
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
	f.StringVar(&caKeyFile, "ca-key-file", "", "The webhook CA's key (ca.key of the Secret portcullis-webhook-certs): issue the API server's client certificate under --ca-file and write it into the webhook kubeconfigs, so that an operator run with --authenticate-callers answers the API server.")
	f.StringVar(&clientCert, "client-cert-file", "", "The API server's client certificate for the webhooks (PEM, common name "+app.APIServerClientName+"), instead of issuing one with --ca-key-file.")
	f.StringVar(&clientKey, "client-key-file", "", "The key of --client-cert-file.")
	f.BoolVar(&withClient, "authenticate-callers", true, "Give the API server a client certificate for the webhooks (from --ca-key-file or --client-cert-file), as an operator run with --authenticate-callers (the default) requires; false renders none.")
	f.BoolVar(&o.AdmissionCallers, "admission-callers", false, "Also render an AdmissionConfiguration (--admission-control-config-file) whose kubeconfig has the API server present the client certificate to the admission webhooks, for an operator run with --authenticate-admission-callers.")
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
