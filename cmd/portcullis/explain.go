package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-io/portcullis/internal/explain"
)

func newExplainCommand() *cobra.Command {
	var (
		kubeconfig, kubeContext string
		req                     explain.Request
		manifest                string
	)
	cmd := &cobra.Command{
		Use:   "explain (VERB RESOURCE [NAME] | -f MANIFEST) [--as USER [--as-group GROUP]...] [-n NAMESPACE]",
		Short: "Explain, against a live cluster, each phase's answer to a request and which policies decided it",
		Long: `explain asks the cluster of the current kubeconfig context what it answers a user
(the caller, or --as USER) for a request (VERB RESOURCE [NAME]) or for the create
of a manifest (-f), phase by phase in the API server's order: who the user is,
what the authorizer chain says (a SubjectAccessReview: Portcullis, then RBAC)
and which AccessPolicies match, then, for a manifest, what a server-side dry run
through admission says and which MutationPolicies and ValidationPolicies match.

It needs to create SubjectAccessReviews, list the policy kinds and namespaces,
and, with --as, impersonate the user. It changes nothing.`,
		Example: `  portcullis explain --as bob --as-group developers get pods -n project-caribou
  portcullis explain --as bob --as-group developers -f pod.yaml -n project-caribou`,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case manifest != "" && len(args) > 0:
				return fmt.Errorf("give a request (VERB RESOURCE [NAME]) or -f MANIFEST, not both")
			case manifest != "":
				data, err := os.ReadFile(manifest)
				if err != nil {
					return err
				}
				j, err := yaml.YAMLToJSON(data)
				if err != nil {
					return err
				}
				u := &unstructured.Unstructured{}
				if err := u.UnmarshalJSON(j); err != nil {
					return fmt.Errorf("%s: %w", manifest, err)
				}
				req.Manifest = u
			case len(args) == 2 || len(args) == 3:
				req.Verb, req.Resource = args[0], args[1]
				if len(args) == 3 {
					req.Name = args[2]
				}
			default:
				return fmt.Errorf("give a request (VERB RESOURCE [NAME]) or -f MANIFEST")
			}
			rules := clientcmd.NewDefaultClientConfigLoadingRules()
			rules.ExplicitPath = kubeconfig
			cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
			if err != nil {
				return err
			}
			rows, err := explain.Explain(cmd.Context(), cfg, req)
			if err != nil {
				return err
			}
			return explain.Write(cmd.OutOrStdout(), rows)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	f.StringVar(&kubeContext, "context", "", "the kubeconfig context")
	f.StringVar(&req.User, "as", "", "explain for this user (impersonated) instead of the caller")
	f.StringArrayVar(&req.Groups, "as-group", nil, "a group of --as (repeatable)")
	f.StringVarP(&req.Namespace, "namespace", "n", "", "the request's namespace (a manifest's own namespace wins)")
	f.StringVarP(&manifest, "filename", "f", "", "explain the create of this manifest, admission included")
	f.StringVar(&req.Subresource, "subresource", "", "the request's subresource")
	return cmd
}
