package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/decision"
	"github.com/portcullis-io/portcullis/internal/devenv"
)

// operatorLog holds everything the operator logged.
var operatorLog syncBuffer

// decisionLog writes the decision lines to operatorLog, unsampled: every
// operator the tests start logs its decisions there.
var decisionLog logr.Logger

// syncBuffer is a bytes.Buffer safe for the operator's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is the control plane and operator shared by this package's tests.
var env *devenv.Env

// tokenCacheTTL is the API server's token cache in these tests: short, so a
// change is visible to the next request within seconds, as DESIGN.md's
// safety rules say tests should set it.
const tokenCacheTTL = time.Second

// authzCacheTTL is the API server's cache of authorization answers in these
// tests, allowed and denied alike.
const authzCacheTTL = time.Second

func TestMain(m *testing.M) {
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	var err error
	// The operator's log is captured: the chain test reads its decision
	// lines. -v also shows it.
	var out io.Writer = &operatorLog
	if testing.Verbose() {
		out = io.MultiWriter(&operatorLog, os.Stderr)
	}
	// As the operator's command builds them: the decision lines unsampled
	// (the tests that read them send hundreds a second).
	opLog, decLog := decision.Loggers(&zap.Options{DestWriter: out})
	ctrl.SetLogger(opLog)
	decisionLog = decLog
	env, err = devenv.Start(ctx, devenv.Options{TokenCacheTTL: tokenCacheTTL, AuthorizationCacheTTL: authzCacheTTL, AuditLog: true, DecisionLog: decisionLog})
	if err == nil && e2eExecution != operatorv1alpha1.ExecutionAuto {
		err = setExecutionWhenBundled(ctx)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane and operator:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping:", err)
	}
	os.Exit(code)
}

// setExecutionWhenBundled sets the suite's execution mode once the
// operator has created the WebhookBundle.
func setExecutionWhenBundled(ctx context.Context) error {
	for {
		err := setExecution(ctx, e2eExecution)
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
