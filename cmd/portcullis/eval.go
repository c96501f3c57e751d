package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-io/portcullis/internal/policytest"
)

func newEvalCommand() *cobra.Command {
	var files []string
	var output string
	cmd := &cobra.Command{
		Use:   "eval -f POLICIES [INPUT|-]",
		Short: "Answer one review or object offline with the given policies",
		Long: `eval loads the policies and objects of each -f (a file, or a directory not
searched below) and answers one input, read from the file INPUT or from
standard input, with the engines the webhooks serve:

  a TokenReview            authentication: the user the token authenticates as
  a SubjectAccessReview    authorization: Allow, Deny or NoOpinion, and why
  an AdmissionReview       its request through mutating, then validating admission
  any other object         its CREATE through admission (by user test-user)

For admission it prints the admitted object after mutation with -o yaml or
-o json.`,
		Example: `  kubectl run web --image=nginx --dry-run=client -o yaml | portcullis eval -f config/library/pod-security/restricted -
  portcullis eval -f config/samples sar.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(files) == 0 {
				return fmt.Errorf("give the policies with -f")
			}
			var in io.Reader = cmd.InOrStdin()
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			input, err := io.ReadAll(in)
			if err != nil {
				return err
			}
			objs, err := policytest.LoadObjects(files)
			if err != nil {
				return err
			}
			r, err := policytest.Eval(cmd.Context(), objs, input)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, f := range r.Failures {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", f)
			}
			switch output {
			case "":
				_, err = fmt.Fprintf(out, "%s: %s\n", r.Phase, r.Got)
			case "json":
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", r.Phase, r.Got)
				var obj any
				if len(r.Object) > 0 {
					_ = json.Unmarshal(r.Object, &obj)
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(obj)
			case "yaml":
				var y []byte
				if len(r.Object) > 0 {
					if y, err = yaml.JSONToYAML(r.Object); err != nil {
						return err
					}
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", r.Phase, r.Got)
				_, err = out.Write(y)
			default:
				return fmt.Errorf("output format %q: use yaml or json (the admitted object), or leave it out", output)
			}
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "policies and objects: a file or a directory (repeatable)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "print the admitted object: yaml or json")
	return cmd
}
