package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/portcullis-io/portcullis/internal/policytest"
)

func newTestCommand() *cobra.Command {
	var output, junitFile string
	cmd := &cobra.Command{
		Use:   "test DIR|FILE...",
		Short: "Run test suites of policies offline, with the webhooks' own engines",
		Long: `test finds every document of kind Test (apiVersion cli.portcullis.io/v1alpha1)
in the YAML files under each argument, loads the policies each names (its own
directory by default), and runs its cases through the same engines the webhooks
serve: tokens through authentication, SubjectAccessReviews through
authorization, objects through mutating then validating admission (mutations
applied twice, to check that they are idempotent). No cluster is needed.

It exits non-zero when a case fails or a suite cannot be loaded (a policy that
does not compile, an unknown field): nothing is skipped silently.`,
		Example: `  portcullis test config/library
  portcullis test -o json policies/
  portcullis test --junit results.xml policies/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var suites []policytest.Suite
			for _, a := range args {
				s, err := policytest.Load(a)
				if err != nil {
					return err
				}
				suites = append(suites, s...)
			}
			results, err := policytest.Run(cmd.Context(), suites)
			if err != nil {
				return err
			}
			if err := policytest.Write(cmd.OutOrStdout(), output, results); err != nil {
				return err
			}
			if junitFile != "" {
				f, err := os.Create(junitFile)
				if err != nil {
					return err
				}
				if err := policytest.Write(f, policytest.FormatJUnit, results); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			if n := policytest.Failed(results); n > 0 {
				return fmt.Errorf("%d of %d cases failed", n, len(results))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", policytest.FormatText, "report format: text, json or junit")
	cmd.Flags().StringVar(&junitFile, "junit", "", "also write a JUnit XML report to this file")
	return cmd
}
