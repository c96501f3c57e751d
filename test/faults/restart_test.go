package faults

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
	"github.com/portcullis-io/portcullis/internal/devenv"
)

// Two replicas behind the webhook front, the authorization webhook wired
// with failurePolicy Deny as the WebhookBundle renders it: while every
// replica is down, what the webhook is asked about is refused and the
// system's own users are not; a replica's restart and a leader change
// under load fail nothing and lose no policy change.
func TestDenyWiringAndRestarts(t *testing.T) {
	s := start(t, devenv.Options{AuthorizationFailurePolicy: apiserverconfig.FailurePolicyDeny}, 2)
	ctx := ctxFor(t, 12*time.Minute)
	a := s.setUp(ctx)

	// The API server runs what the WebhookBundle renders.
	bundle := &operatorv1alpha1.WebhookBundle{ObjectMeta: metav1.ObjectMeta{Name: operatorv1alpha1.DefaultName}}
	if err := s.env.Client.Patch(ctx, bundle, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"authorization":{"failurePolicy":"Deny"}}}`))); err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, time.Minute, "the rendered AuthorizationConfiguration says Deny", func(ctx context.Context) error {
		var sec corev1.Secret
		if err := s.env.Client.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: app.WiringSecret}, &sec); err != nil {
			return err
		}
		if cfg := string(sec.Data[apiserverconfig.AuthorizationConfigFile]); !strings.Contains(cfg, "failurePolicy: Deny") {
			return fmt.Errorf("%s:\n%s", apiserverconfig.AuthorizationConfigFile, cfg)
		}
		return nil
	})

	t.Run("down", func(t *testing.T) {
		for _, p := range s.env.Processes {
			if err := p.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(authzCacheTTL + time.Second)
		took, err := timed(func() error {
			_, err := a.bot.CoreV1().ConfigMaps("faults").Get(ctx, "victim", metav1.GetOptions{})
			return err
		})
		if err == nil || !(apierrors.IsForbidden(err) || apierrors.IsInternalError(err) && strings.Contains(err.Error(), "/authorize")) {
			t.Errorf("bot's read, which RBAC allows, with the webhook down and failurePolicy Deny: %v, want refused", err)
		}
		observe(t, "authorization (Deny)", "down", "refused: "+firstLine(err), took)
		if _, err := a.probe.CoreV1().ConfigMaps("faults").Get(ctx, "victim", metav1.GetOptions{}); err != nil {
			t.Errorf("a kube-system ServiceAccount with the webhook down: %v, want RBAC's answer (allowed)", err)
		}
		if _, err := s.admin.CoreV1().ConfigMaps("faults").Get(ctx, "victim", metav1.GetOptions{}); err != nil {
			t.Errorf("system:masters with the webhook down: %v", err)
		}
		// The operator's own ServiceAccount is not sent: it lists as RBAC
		// lets it.
		token, err := serviceAccountToken(ctx, s.env.Client, operatorNamespace, operatorServiceAccount)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.user(token).CoreV1().ConfigMaps("faults").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("the operator's ServiceAccount with the webhook down: %v", err)
		}
		// Anonymous health probes are not sent: the API server stays ready.
		anon, err := kubernetes.NewForConfig(rest.AnonymousClientConfig(s.adminConfig()))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/readyz", "/livez", "/healthz", "/version"} {
			if _, err := anon.Discovery().RESTClient().Get().AbsPath(path).DoRaw(ctx); err != nil {
				t.Errorf("an anonymous GET %s with the webhook down: %v", path, err)
			}
		}
		// The operator, as its own ServiceAccount, is never asked about:
		// it starts while its authorizer is down.
		began := time.Now()
		if err := s.env.Processes[0].Start(); err != nil {
			t.Fatal(err)
		}
		if err := s.env.Processes[0].WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		observe(t, "authorization (Deny)", "operator restarted", "its ServiceAccount is not sent to the webhook: ready", time.Since(began))
		if err := s.env.Processes[1].Start(); err != nil {
			t.Fatal(err)
		}
		if err := s.env.Processes[1].WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		s.expectUp(ctx, a, time.Minute)
	})

	t.Run("restarts under load", func(t *testing.T) {
		l := s.load(ctx, a, 3)
		time.Sleep(3 * time.Second)
		before := s.leaseTransitions(ctx)
		// While each replica in turn is stopped, a policy change: the
		// first stop creates a ValidationPolicy, the second edits it.
		second := &admissionv1alpha1.ValidationPolicy{}
		for i, p := range s.env.Processes {
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
			msg := fmt.Sprintf("the data key forbidden2 is refused (version %d)", i+1)
			s.apply(ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: fault-check-2}
spec:
  match:
    resources:
    - {apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE, UPDATE]}
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: faults}
  validations:
  - expression: "!has(object.data) || !('forbidden2' in object.data)"
    message: "`+msg+`"
`)
			time.Sleep(3 * time.Second)
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			if err := p.WaitReady(ctx); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			t.Logf("%s restarted; the leader is %s", p.Name, s.leader(ctx))
		}
		after := s.leaseTransitions(ctx)
		stats := l.stop()
		if after <= before {
			t.Errorf("the Lease's transitions went from %d to %d: no leader change happened", before, after)
		}
		observe(t, "all", "each replica restarted under load, leader change", fmt.Sprintf("%d requests, %d unexpected errors %v, p99 %v", stats.n, stats.unexpected(), stats.errors, stats.p99.Round(time.Millisecond)), stats.duration)
		if stats.unexpected() > 0 {
			t.Errorf("unexpected errors under restarts: %v", stats.errors)
		}
		// Nothing lost: the edit made while the leader was down is served
		// and its status written by the new leader.
		eventually(t, ctx, time.Minute, "fault-check-2's last version is in force", func(ctx context.Context) error {
			if err := s.env.Client.Get(ctx, client.ObjectKey{Name: "fault-check-2"}, second); err != nil {
				return err
			}
			ready := false
			for _, c := range second.Status.Conditions {
				ready = ready || c.Type == "Ready" && c.Status == metav1.ConditionTrue && c.ObservedGeneration == second.Generation
			}
			if !ready {
				return fmt.Errorf("not Ready at generation %d: %+v", second.Generation, second.Status.Conditions)
			}
			for range 5 {
				_, err := s.createConfigMap(ctx, a.alice, "faults", map[string]string{"forbidden2": "x"})
				if err == nil || !strings.Contains(err.Error(), "(version 2)") {
					return fmt.Errorf("a ConfigMap with forbidden2: %v", err)
				}
			}
			return nil
		})
	})
}

// leader is the Lease holder's identity.
func (s *suite) leader(ctx context.Context) string {
	s.t.Helper()
	var lease coordinationv1.Lease
	if err := s.env.Client.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: app.LeaderElectionID}, &lease); err != nil {
		s.t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// leaseTransitions counts the Lease's changes of holder.
func (s *suite) leaseTransitions(ctx context.Context) int32 {
	s.t.Helper()
	var lease coordinationv1.Lease
	if err := s.env.Client.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: app.LeaderElectionID}, &lease); err != nil {
		s.t.Fatal(err)
	}
	if lease.Spec.LeaseTransitions == nil {
		return 0
	}
	return *lease.Spec.LeaseTransitions
}

// loadStats is what a load run saw.
type loadStats struct {
	n        int
	errors   map[string]int
	p99      time.Duration
	duration time.Duration
}

func (l loadStats) unexpected() int {
	n := 0
	for _, c := range l.errors {
		n += c
	}
	return n
}

type loader struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	began  time.Time
	mu     sync.Mutex
	lat    []time.Duration
	errs   map[string]int
	n      atomic.Int64
}

// load runs workers that, each in turn, as real users through every
// phase: alice creates a ConfigMap (mutated and admitted), creates one
// the ValidationPolicy refuses, reads one; bot is refused a delete by the
// Deny AccessPolicy. Any other answer is an unexpected error.
func (s *suite) load(ctx context.Context, a *actors, workers int) *loader {
	ctx, cancel := context.WithCancel(ctx)
	l := &loader{cancel: cancel, began: time.Now(), errs: map[string]int{}}
	steps := []func(context.Context) string{
		func(ctx context.Context) string {
			cm, err := s.createConfigMap(ctx, a.alice, "faults", nil)
			switch {
			case err != nil:
				return "create: " + reason(err)
			case cm.Labels["mutated"] != "yes":
				return "create: not mutated"
			}
			return ""
		},
		func(ctx context.Context) string {
			_, err := s.createConfigMap(ctx, a.alice, "faults", map[string]string{"forbidden": "x"})
			if err == nil || !strings.Contains(err.Error(), refusedByPolicy) {
				return "refused create: " + reason(err)
			}
			return ""
		},
		func(ctx context.Context) string {
			_, err := a.alice.CoreV1().ConfigMaps("faults").Get(ctx, "victim", metav1.GetOptions{})
			if err != nil {
				return "get: " + reason(err)
			}
			return ""
		},
		func(ctx context.Context) string {
			err := a.bot.CoreV1().ConfigMaps("faults").Delete(ctx, "victim", metav1.DeleteOptions{})
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "bot-keeps-configmaps") {
				return "denied delete: " + reason(err)
			}
			return ""
		},
	}
	for w := range workers {
		l.wg.Go(func() {
			for i := w; ctx.Err() == nil; i++ {
				step := steps[i%len(steps)]
				var what string
				took, _ := timed(func() error { what = step(ctx); return nil })
				if ctx.Err() != nil {
					return
				}
				l.n.Add(1)
				l.mu.Lock()
				l.lat = append(l.lat, took)
				if what != "" {
					l.errs[what]++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *loader) stop() loadStats {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	sort.Slice(l.lat, func(i, j int) bool { return l.lat[i] < l.lat[j] })
	st := loadStats{n: int(l.n.Load()), errors: l.errs, duration: time.Since(l.began)}
	if len(l.lat) > 0 {
		st.p99 = l.lat[len(l.lat)*99/100]
	}
	return st
}

func reason(err error) string {
	if err == nil {
		return "succeeded"
	}
	if r := apierrors.ReasonForError(err); r != metav1.StatusReasonUnknown {
		return string(r) + ": " + firstLine(err)
	}
	return firstLine(err)
}
