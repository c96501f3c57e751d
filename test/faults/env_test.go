package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-io/portcullis/internal/devenv"
)

// Timeouts of the webhooks in the fault suite: short, so that a fault
// shows within seconds, and the same for every phase the API server lets
// us set (the token webhook's is the API server's fixed 30 s).
const (
	admissionTimeout     = 2 * time.Second
	authorizationTimeout = 2 * time.Second
	// apiServerTokenWebhookTimeout is the API server's own timeout of a
	// TokenReview call (k8s.io/apiserver/pkg/util/webhook), not settable.
	apiServerTokenWebhookTimeout = 30 * time.Second
	// apiServerTLSHandshakeTimeout is client-go's, which the API server's
	// webhook clients use: a new connection to a hung server fails first.
	apiServerTLSHandshakeTimeout = 10 * time.Second
	tokenCacheTTL                = 2 * time.Second
	authzCacheTTL                = time.Second
)

// Operator's ServiceAccount, as config/default names it.
const (
	operatorNamespace      = devenv.OperatorServiceAccountNamespace
	operatorServiceAccount = devenv.OperatorServiceAccount
)

// suite is one control plane with the operator as separate processes,
// and the users the tests act as.
type suite struct {
	t   *testing.T
	env *devenv.Env
	// admin is a client-certificate user in system:masters.
	admin *kubernetes.Clientset
}

// start starts a control plane and the operator's replicas as processes
// running as the operator's ServiceAccount, with o's other settings.
func start(t *testing.T, o devenv.Options, replicas int) *suite {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	state := t.TempDir()
	o.StateDir = state
	o.TokenCacheTTL, o.AuthorizationCacheTTL = tokenCacheTTL, authzCacheTTL
	o.AuthorizationTimeout = authorizationTimeout
	o.Process = &devenv.ProcessOptions{
		Binary:   binary,
		Replicas: replicas,
		Kubeconfig: func(ctx context.Context, e *devenv.Env) (string, error) {
			return devenv.OperatorServiceAccountKubeconfig(ctx, e, filepath.Join("..", ".."), state, time.Hour)
		},
		Args: []string{
			fmt.Sprintf("--mutating-timeout-seconds=%d", int(admissionTimeout.Seconds())),
			fmt.Sprintf("--validating-timeout-seconds=%d", int(admissionTimeout.Seconds())),
		},
	}
	cpLog, err := os.Create(filepath.Join(state, "control-plane.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cpLog.Close() })
	o.Out = cpLog
	env, err := devenv.Start(ctx, o)
	if err != nil {
		t.Fatalf("starting the control plane and operator: %v%s", err, logs(state))
	}
	s := &suite{t: t, env: env}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs(state))
		}
		if err := env.Stop(); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
	if s.admin, err = kubernetes.NewForConfig(env.ControlPlane.AdminConfig()); err != nil {
		t.Fatal(err)
	}
	return s
}

// logs is the tail of every process's log under state: the operator's
// and the control plane's.
func logs(state string) string {
	paths, _ := filepath.Glob(filepath.Join(state, "*.log"))
	var b strings.Builder
	for _, p := range paths {
		data, _ := os.ReadFile(p)
		if len(data) > 8<<10 {
			data = data[len(data)-8<<10:]
		}
		fmt.Fprintf(&b, "\n--- %s (tail)\n%s", filepath.Base(p), data)
	}
	return b.String()
}

// serviceAccountToken is a one-hour token of the ServiceAccount.
func serviceAccountToken(ctx context.Context, c client.Client, namespace, name string) (string, error) {
	return devenv.ServiceAccountToken(ctx, c, namespace, name, time.Hour)
}

// user is a clientset for a bearer token; it does not retry, so each
// call is one request.
func (s *suite) user(token string) *kubernetes.Clientset {
	s.t.Helper()
	cfg := s.env.ControlPlane.TokenConfig(token)
	cfg.QPS, cfg.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	return cs
}

// adminConfig is the admin's rest.Config.
func (s *suite) adminConfig() *rest.Config { return s.env.ControlPlane.AdminConfig() }

// saUser is a clientset for a ServiceAccount, created if absent.
func (s *suite) saUser(ctx context.Context, namespace, name string) *kubernetes.Clientset {
	s.t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if _, err := s.admin.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		s.t.Fatal(err)
	}
	token, err := serviceAccountToken(ctx, s.env.Client, namespace, name)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.user(token)
}

// apply server-side applies a manifest as the admin.
func (s *suite) apply(ctx context.Context, manifest string) {
	s.t.Helper()
	if err := s.env.Apply(ctx, []byte(manifest)); err != nil {
		s.t.Fatal(err)
	}
}

// eventually polls cond for up to d.
func eventually(t *testing.T, ctx context.Context, d time.Duration, what string, cond func(ctx context.Context) error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, d, true, func(ctx context.Context) (bool, error) {
		last = cond(ctx)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %v (last: %v)", what, d, last)
	}
}

// timed runs f and returns how long it took.
func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

// observation is one row of the fault table, logged for docs/operations.md.
func observe(t *testing.T, phase, fault, behaviour string, took time.Duration) {
	t.Helper()
	t.Logf("| %s | %s | %s | %v |", phase, fault, behaviour, took.Round(10*time.Millisecond))
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
