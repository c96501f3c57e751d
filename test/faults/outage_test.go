package faults

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/internal/devenv"
)

// fixtures are the policies every phase answers in the fault suite:
// alice, a Portcullis StaticToken user; bot, a ServiceAccount the API
// server authenticates, whom RBAC lets edit ConfigMaps in faults and an
// AccessPolicy forbids to delete them (Deny) and allows to read Secrets
// there (Allow); a MutationPolicy that labels ConfigMaps in faults and
// faults-mut; a ValidationPolicy that refuses a ConfigMap with the data
// key "forbidden" in faults.
const fixtures = `
apiVersion: v1
kind: Namespace
metadata: {name: faults}
---
apiVersion: v1
kind: Namespace
metadata: {name: faults-mut}
---
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: alice}
spec:
  user: {username: alice, groups: [fault-devs]}
  secretRef: {name: alice-token, key: token}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: editor, namespace: faults}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [get, list, create, delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: editor, namespace: faults}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: editor}
subjects:
- {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
- {kind: ServiceAccount, name: bot, namespace: faults}
- {kind: ServiceAccount, name: probe, namespace: kube-system}
---
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: bot-keeps-configmaps}
spec:
  effect: Deny
  subjects: [{kind: ServiceAccount, name: bot, namespace: faults}]
  rules: [{namespaces: [faults], apiGroups: [""], resources: [configmaps], verbs: [delete]}]
---
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: bot-reads-secrets}
spec:
  effect: Allow
  subjects: [{kind: ServiceAccount, name: bot, namespace: faults}]
  rules: [{namespaces: [faults], apiGroups: [""], resources: [secrets], verbs: [get]}]
---
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: fault-mark}
spec:
  match:
    resources:
    - {apiGroups: [""], apiVersions: [v1], resources: [configmaps, serviceaccounts], operations: [CREATE]}
    namespaceSelector:
      matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [faults, faults-mut]}]
  mutations:
  - setLabels: {mutated: "yes"}
---
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: fault-check}
spec:
  match:
    resources:
    - {apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE, UPDATE]}
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: faults}
  action: Deny
  validations:
  - expression: "!has(object.data) || !('forbidden' in object.data)"
    message: "the data key forbidden is refused"
`

const refusedByPolicy = "the data key forbidden is refused"

// actors are the suite's users.
type actors struct {
	alice, bot, probe *kubernetes.Clientset
	aliceToken        string
}

// setUp applies the fixtures with every admission policy on the webhook
// (execution: Webhook, so that the webhook's faults are what is tested),
// and waits until each phase answers.
func (s *suite) setUp(ctx context.Context) *actors {
	t := s.t
	t.Helper()
	bundle := &operatorv1alpha1.WebhookBundle{ObjectMeta: metav1.ObjectMeta{Name: operatorv1alpha1.DefaultName}}
	eventually(t, ctx, time.Minute, "execution: Webhook", func(ctx context.Context) error {
		return s.env.Client.Patch(ctx, bundle, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"admission":{"execution":"Webhook"}}}`)))
	})
	s.apply(ctx, fixtures)
	token, err := s.env.StaticToken(ctx, "alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	a := &actors{alice: s.user(token), aliceToken: token, bot: s.saUser(ctx, "faults", "bot"), probe: s.saUser(ctx, "kube-system", "probe")}
	if _, err := s.admin.CoreV1().Secrets("faults").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	s.expectUp(ctx, a, time.Minute)
	return a
}

// expectUp waits until every phase answers as its policies say.
func (s *suite) expectUp(ctx context.Context, a *actors, within time.Duration) {
	t := s.t
	t.Helper()
	eventually(t, ctx, within, "alice authenticates", func(ctx context.Context) error {
		_, err := whoami(ctx, a.alice)
		return err
	})
	eventually(t, ctx, within, "the AccessPolicies decide for bot", func(ctx context.Context) error {
		if err := s.victim(ctx); err != nil {
			return err
		}
		if err := a.bot.CoreV1().ConfigMaps("faults").Delete(ctx, "victim", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
			return fmt.Errorf("bot deleting a ConfigMap: %v, want Forbidden by bot-keeps-configmaps", err)
		}
		_, err := a.bot.CoreV1().Secrets("faults").Get(ctx, "s", metav1.GetOptions{})
		return err
	})
	eventually(t, ctx, within, "the MutationPolicy labels", func(ctx context.Context) error {
		cm, err := s.mutationOnly(ctx)
		if err == nil && cm.Labels["mutated"] != "yes" {
			err = fmt.Errorf("not mutated: labels %v", cm.Labels)
		}
		return err
	})
	eventually(t, ctx, within, "the ValidationPolicy refuses", func(ctx context.Context) error {
		_, err := s.createConfigMap(ctx, s.admin, "faults", map[string]string{"forbidden": "x"})
		if err == nil || !strings.Contains(err.Error(), refusedByPolicy) {
			return fmt.Errorf("a forbidden ConfigMap: %v, want refused by fault-check", err)
		}
		_, err = s.createConfigMap(ctx, s.admin, "faults", nil)
		return err
	})
}

var seq atomic.Int64

// createConfigMap creates a ConfigMap of a new name in ns as cs.
func (s *suite) createConfigMap(ctx context.Context, cs *kubernetes.Clientset, ns string, data map[string]string) (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", seq.Add(1))}, Data: data}
	return cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
}

// mutationOnly creates a ServiceAccount in faults-mut, which only the
// MutationPolicy matches (the validating webhook is not called for it).
func (s *suite) mutationOnly(ctx context.Context) (*corev1.ServiceAccount, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sa-%d", seq.Add(1))}}
	return s.admin.CoreV1().ServiceAccounts("faults-mut").Create(ctx, sa, metav1.CreateOptions{})
}

// victim makes sure the ConfigMap bot tries to delete exists, as the
// admin, which no admission policy stops while the webhook is up.
func (s *suite) victim(ctx context.Context) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "victim", Namespace: "faults"}}
	_, err := s.admin.CoreV1().ConfigMaps("faults").Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// whoami asks the API server who the caller is (kubectl auth whoami).
func whoami(ctx context.Context, cs *kubernetes.Clientset) (authenticationv1.UserInfo, error) {
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return r.Status.UserInfo, nil
}

// The default wiring (token webhook, authorization NoOpinion, mutating
// Ignore, validating Fail) with the operator killed, paused and slowed.
func TestDefaultWiringUnderFaults(t *testing.T) {
	s := start(t, devenv.Options{}, 1)
	ctx := ctxFor(t, 12*time.Minute)
	a := s.setUp(ctx)
	op := s.env.Processes[0]

	t.Run("down", func(t *testing.T) {
		if err := op.Kill(); err != nil {
			t.Fatal(err)
		}
		downAt := time.Now()
		// Past the API server's caches of answers: what follows asks the
		// webhooks.
		pastTokenCaches(downAt)
		took, err := timed(func() error { _, err := whoami(ctx, a.alice); return err })
		if !apierrors.IsUnauthorized(err) {
			t.Errorf("alice's Portcullis token while down: %v, want 401", err)
		}
		observe(t, "authentication", "down", "Portcullis tokens 401", took)
		if _, err := s.admin.CoreV1().Namespaces().Get(ctx, "faults", metav1.GetOptions{}); err != nil {
			t.Errorf("a client certificate while down: %v", err)
		}
		if u, err := whoami(ctx, a.bot); err != nil || u.Username != "system:serviceaccount:faults:bot" {
			t.Errorf("a ServiceAccount token while down: %v, %v", u.Username, err)
		}

		// NoOpinion: RBAC decides, both ways. The Deny policy is not
		// enforced while Portcullis is down, nor the Allow.
		took, err = timed(func() error { return a.bot.CoreV1().ConfigMaps("faults").Delete(ctx, "victim", metav1.DeleteOptions{}) })
		if err != nil {
			t.Errorf("bot's delete, which RBAC allows and a Deny policy forbids, while down: %v, want allowed by RBAC", err)
		}
		observe(t, "authorization (NoOpinion)", "down", "RBAC decides: a Deny policy's request allowed by RBAC", took)
		// What RBAC does not allow is refused, but as the API server's
		// 500 with the webhook's error rather than a 403: NoOpinion
		// passes the error on with the decision.
		took, err = timed(func() error {
			_, err := a.bot.CoreV1().Secrets("faults").Get(ctx, "s", metav1.GetOptions{})
			return err
		})
		if err == nil || !(apierrors.IsForbidden(err) || apierrors.IsInternalError(err) && strings.Contains(err.Error(), "/authorize")) {
			t.Errorf("bot's read that only an Allow policy grants, while down: %v, want refused", err)
		}
		observe(t, "authorization (NoOpinion)", "down", "what only an Allow policy grants is refused: "+firstLine(err), took)

		took, err = timed(func() error {
			cm, err := s.mutationOnly(ctx)
			if err == nil && cm.Labels["mutated"] != "" {
				err = fmt.Errorf("mutated while down: %v", cm.Labels)
			}
			return err
		})
		if err != nil {
			t.Errorf("a create only the MutationPolicy matches, while down: %v, want admitted unmutated", err)
		}
		if took > admissionTimeout {
			t.Errorf("it took %v, longer than the mutating webhook's timeout %v", took, admissionTimeout)
		}
		observe(t, "mutating admission (Ignore)", "down", "admitted unmutated", took)

		took, err = timed(func() error { _, err := s.createConfigMap(ctx, s.admin, "faults", nil); return err })
		if err == nil || !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Errorf("a create the ValidationPolicy matches, while down: %v, want refused: failed calling webhook", err)
		}
		observe(t, "validating admission (Fail)", "down", "refused: "+firstLine(err), took)

		// Never blocked: kube-system and the operator's namespace.
		for _, ns := range []string{"kube-system", operatorNamespace} {
			if _, err := s.createConfigMap(ctx, s.admin, ns, nil); err != nil {
				t.Errorf("a create in %s while down: %v", ns, err)
			}
		}
		// The way out always works: the webhook configurations can be
		// deleted (the operator restores them when it returns).
		if err := s.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, app.ValidatingWebhookConfiguration, metav1.DeleteOptions{}); err != nil {
			t.Errorf("deleting the validating webhook configuration while down: %v", err)
		}
		// The API server sees the deletion through its informer, within
		// moments: from then on creates are admitted.
		gone := time.Now()
		eventually(t, ctx, 10*time.Second, "a create after the validating configuration is gone", func(ctx context.Context) error {
			_, err := s.createConfigMap(ctx, s.admin, "faults", nil)
			return err
		})
		observe(t, "validating admission (Fail)", "down, configuration deleted", "admitted", time.Since(gone))

		// Back: no restart of anything else, every phase answers again,
		// and the deleted configuration is back.
		if err := op.Start(); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		if err := op.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		s.expectUp(ctx, a, time.Minute)
		observe(t, "all", "restart", "every phase answers again, the deleted webhook configuration restored", time.Since(began))
	})

	t.Run("paused", func(t *testing.T) {
		if err := op.Pause(); err != nil {
			t.Fatal(err)
		}
		paused := time.Now()
		pastTokenCaches(paused)
		// The token webhook has no timeout of ours: the API server's own
		// is 30 s. Asked in the background while the rest is checked.
		type answer struct {
			took time.Duration
			err  error
		}
		authn := make(chan answer, 1)
		go func() {
			took, err := timed(func() error { _, err := whoami(ctx, a.alice); return err })
			authn <- answer{took, err}
		}()

		took, err := timed(func() error { return a.bot.CoreV1().ConfigMaps("faults").Delete(ctx, "victim", metav1.DeleteOptions{}) })
		if err != nil {
			t.Errorf("bot's delete while paused: %v, want allowed by RBAC after the timeout", err)
		}
		within(t, "the authorization webhook's timeout", took, authorizationTimeout)
		observe(t, "authorization (NoOpinion)", "paused", "RBAC decides after the timeout", took)

		took, err = timed(func() error {
			cm, err := s.mutationOnly(ctx)
			if err == nil && cm.Labels["mutated"] != "" {
				err = fmt.Errorf("mutated while paused: %v", cm.Labels)
			}
			return err
		})
		if err != nil {
			t.Errorf("a create only the MutationPolicy matches, while paused: %v", err)
		}
		within(t, "the mutating webhook's timeout", took, admissionTimeout)
		observe(t, "mutating admission (Ignore)", "paused", "admitted unmutated after the timeout", took)

		took, err = timed(func() error { _, err := s.createConfigMap(ctx, s.admin, "faults", nil); return err })
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Errorf("a create the ValidationPolicy matches, while paused: %v, want refused", err)
		}
		atMost(t, "both admission webhooks' timeouts", took, 2*admissionTimeout)
		observe(t, "validating admission (Fail)", "paused", "refused after both timeouts: "+firstLine(err), took)

		got := <-authn
		if !apierrors.IsUnauthorized(got.err) {
			t.Errorf("alice while paused: %v, want 401", got.err)
		}
		// On a new connection the TLS handshake times out first (10 s,
		// client-go's); on a kept-alive one the request does (30 s).
		if got.took < apiServerTLSHandshakeTimeout*3/4 || got.took > apiServerTokenWebhookTimeout+3*time.Second {
			t.Errorf("alice's 401 while paused took %v, want between the API server's TLS handshake timeout (%v) and its token webhook timeout (%v)",
				got.took, apiServerTLSHandshakeTimeout, apiServerTokenWebhookTimeout)
		}
		observe(t, "authentication", "paused", "Portcullis tokens 401 after the API server's timeout", got.took)

		if err := op.Resume(); err != nil {
			t.Fatal(err)
		}
		s.restartIfExited(ctx, op, time.Since(paused))
		s.expectUp(ctx, a, time.Minute)
	})

	t.Run("slow", func(t *testing.T) {
		// Past every timeout we set, under the token webhook's: each phase
		// its failure policy, no request hung.
		delay := admissionTimeout + time.Second
		s.env.DelayWebhooks(delay)
		pastTokenCaches(time.Now())
		took, err := timed(func() error { _, err := whoami(ctx, a.alice); return err })
		if err != nil {
			t.Errorf("alice with the webhooks %v slow: %v, want authenticated (under the 30 s timeout)", delay, err)
		}
		observe(t, "authentication", fmt.Sprintf("slow, %v", delay), "authenticated after the delay, then authorization's timeout", took)
		took, err = timed(func() error { return a.bot.CoreV1().ConfigMaps("faults").Delete(ctx, "victim", metav1.DeleteOptions{}) })
		if err != nil {
			t.Errorf("bot's delete with the webhooks slow: %v, want allowed by RBAC after the timeout", err)
		}
		within(t, "the authorization webhook's timeout", took, authorizationTimeout)
		observe(t, "authorization (NoOpinion)", fmt.Sprintf("slow, %v", delay), "RBAC decides after the timeout", took)
		took, err = timed(func() error {
			cm, err := s.mutationOnly(ctx)
			if err == nil && cm.Labels["mutated"] != "" {
				err = fmt.Errorf("mutated: %v", cm.Labels)
			}
			return err
		})
		if err != nil {
			t.Errorf("a create only the MutationPolicy matches, slow: %v", err)
		}
		within(t, "the mutating webhook's timeout", took, admissionTimeout)
		observe(t, "mutating admission (Ignore)", fmt.Sprintf("slow, %v", delay), "admitted unmutated after the timeout", took)
		took, err = timed(func() error { _, err := s.createConfigMap(ctx, s.admin, "faults", nil); return err })
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Errorf("a create the ValidationPolicy matches, slow: %v, want refused", err)
		}
		atMost(t, "both admission webhooks' timeouts", took, 2*admissionTimeout)
		observe(t, "validating admission (Fail)", fmt.Sprintf("slow, %v", delay), "refused after the timeouts: "+firstLine(err), took)

		// Under the timeouts: the answers are the policies', and the
		// delay is all that is added, once per webhook called.
		s.env.DelayWebhooks(0)
		s.expectUp(ctx, a, time.Minute)
		base := s.admittedP50(ctx, 7)
		small := 300 * time.Millisecond
		s.env.DelayWebhooks(small)
		slow := s.admittedP50(ctx, 7)
		s.env.DelayWebhooks(0)
		added := slow - base
		// A create in faults calls the mutating and the validating webhook.
		if added < small || added > 2*small+admissionTimeout/2 {
			t.Errorf("a %v delay under the timeouts added %v to a create that calls two webhooks (p50 %v against %v)", small, added, slow, base)
		}
		observe(t, "mutating + validating admission", fmt.Sprintf("slow, %v", small), fmt.Sprintf("mutated and validated; p50 %v against %v", slow.Round(time.Millisecond), base.Round(time.Millisecond)), added)
	})
}

// apiServerTokenSuccessCache is the API server's own cache of accepted
// tokens, in front of every token authenticator and not settable
// (kube-apiserver's TokenSuccessCacheTTL).
const apiServerTokenSuccessCache = 10 * time.Second

// pastTokenCaches sleeps until every cached answer from before since has
// expired: the token webhook's cache, the API server's own success cache
// and the authorization cache.
func pastTokenCaches(since time.Time) {
	time.Sleep(time.Until(since.Add(max(tokenCacheTTL, apiServerTokenSuccessCache, authzCacheTTL) + time.Second)))
}

// admittedP50 is the median latency of n admin creates in faults, each
// mutated and admitted.
func (s *suite) admittedP50(ctx context.Context, n int) time.Duration {
	s.t.Helper()
	var lat []time.Duration
	for range n {
		took, err := timed(func() error {
			cm, err := s.createConfigMap(ctx, s.admin, "faults", nil)
			if err == nil && cm.Labels["mutated"] != "yes" {
				err = fmt.Errorf("not mutated: %v", cm.Labels)
			}
			return err
		})
		if err != nil {
			s.t.Fatalf("a create under the timeouts: %v", err)
		}
		lat = append(lat, took)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[n/2]
}

// restartIfExited starts op again if it exited, as a Deployment would: a
// pause past the leader election's renew deadline makes the operator
// exit when it resumes (it cannot know what happened meanwhile).
func (s *suite) restartIfExited(ctx context.Context, op *devenv.Process, paused time.Duration) {
	s.t.Helper()
	time.Sleep(2 * time.Second)
	if !op.Running() {
		s.t.Logf("%s exited after a pause of %v (leader election lost); restarted as its Deployment would", op.Name, paused.Round(time.Second))
		_ = op.Stop()
		if err := op.Start(); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := op.WaitReady(ctx); err != nil {
		s.t.Fatal(err)
	}
}

// within fails t unless took is about the timeout: no sooner than most of
// it, and not much later (the API server's own overhead and a retry).
func within(t *testing.T, what string, took, timeout time.Duration) {
	t.Helper()
	if took < timeout*3/4 || took > timeout+3*time.Second {
		t.Errorf("took %v, want about %s (%v)", took, what, timeout)
	}
}

// atMost fails t if took is past the timeout (and the API server's
// overhead) or shorter than the first webhook's timeout: the request
// waited, and no longer than the timeouts say.
func atMost(t *testing.T, what string, took, timeout time.Duration) {
	t.Helper()
	if took < admissionTimeout*3/4 || took > timeout+3*time.Second {
		t.Errorf("took %v, want at most %s (%v)", took, what, timeout)
	}
}

func firstLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	return msg
}
