// Command portcullis is the Portcullis operator (the default command), the
// local development control plane (dev), the renderer of the API server's
// wiring files (apiserver-config), and the offline test runner of policies
// (test).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portcullis-io/portcullis/internal/decision"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// newRootCommand builds the command tree. Every flag belongs to a command:
// there are no package-level flags.
func newRootCommand() *cobra.Command {
	zapOpts := &zap.Options{Development: false, TimeEncoder: zapcore.RFC3339NanoTimeEncoder}
	op := newOperatorOptions()
	root := &cobra.Command{
		Use:   "portcullis",
		Short: "Portcullis serves the token authentication, authorization and admission webhooks of a Kubernetes API server",
		Long: `Portcullis serves the webhooks kube-apiserver calls on every request, in order:
token authentication (TokenReview), authorization (SubjectAccessReview),
mutating and validating admission (AdmissionReview), from policy written as
custom resources. Without a subcommand it runs the operator.`,
		SilenceUsage:  true,
		SilenceErrors: true, // main prints the error once
		PersistentPreRun: func(*cobra.Command, []string) {
			var operatorLog logr.Logger
			operatorLog, op.decisionLog = decision.Loggers(zapOpts)
			ctrl.SetLogger(operatorLog)
		},
	}
	goFlags := flag.NewFlagSet("zap", flag.ContinueOnError)
	zapOpts.BindFlags(goFlags)
	root.PersistentFlags().AddGoFlagSet(goFlags)

	op.addFlags(root)
	root.RunE = func(cmd *cobra.Command, _ []string) error { return op.run(cmd.Context()) }

	root.AddCommand(newDevCommand(&op.decisionLog), newAPIServerConfigCommand(), newTestCommand(), newEvalCommand(), newExplainCommand())
	return root
}
