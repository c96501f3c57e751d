package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// caribou is the namespace of the classic ABAC example ("projectCaribou"
// in the Kubernetes docs; namespace names are lower case).
const caribou = "project-caribou"

// user makes a StaticToken user and returns a clientset acting as them.
func user(t *testing.T, ctx context.Context, name string, groups ...string) (*kubernetes.Clientset, string) {
	t.Helper()
	g := ""
	if len(groups) > 0 {
		g = `, groups: [` + strings.Join(groups, ", ") + `]`
	}
	apply(t, ctx, fmt.Sprintf(`
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: e2e-authz-%[1]s}
spec:
  user: {username: %[1]s%[2]s}
  secretRef: {name: e2e-authz-%[1]s-token}
`, name, g))
	t.Cleanup(func() {
		deleteObj(t, &authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "e2e-authz-" + name}})
	})
	token, err := env.StaticToken(ctx, "e2e-authz-"+name, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(env.ControlPlane.TokenConfig(token))
	if err != nil {
		t.Fatal(err)
	}
	return cs, token
}

func policy(t *testing.T, ctx context.Context, manifest string) {
	t.Helper()
	apply(t, ctx, manifest)
	name := between(manifest, "name: ", "}")
	p := &authzv1alpha1.AccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	t.Cleanup(func() { deleteObj(t, p) })
	waitReady(t, ctx, p)
}

func between(s, a, b string) string {
	_, rest, _ := strings.Cut(s, a)
	v, _, _ := strings.Cut(rest, b)
	return strings.TrimSpace(v)
}

func waitReady(t *testing.T, ctx context.Context, p *authzv1alpha1.AccessPolicy) {
	t.Helper()
	eventually(t, ctx, "AccessPolicy "+p.Name+" Ready", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, clientKey(p.Name), p); err != nil {
			return false, err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == authzv1alpha1.ConditionReady && c.ObservedGeneration == p.Generation {
				return c.Status == metav1.ConditionTrue, fmt.Errorf("%s: %s", c.Reason, c.Message)
			}
		}
		return false, nil
	})
}

func ensureNamespace(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// status returns the HTTP status of err (200 for nil).
func status(err error) int {
	if err == nil {
		return 200
	}
	if s, ok := err.(apierrors.APIStatus); ok {
		return int(s.Status().Code)
	}
	return -1
}

// expectStatus polls until op returns the wanted status: answers are
// cached by the API server for authzCacheTTL.
func expectStatus(t *testing.T, ctx context.Context, what string, want int, op func(ctx context.Context) error) error {
	t.Helper()
	var last error
	eventually(t, ctx, fmt.Sprintf("%s → %d", what, want), func(ctx context.Context) (bool, error) {
		last = op(ctx)
		return status(last) == want, last
	})
	return last
}

func TestAccessPolicyABACExampleAndCanI(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	ensureNamespace(t, ctx, caribou)
	bob, token := user(t, ctx, "bob", "developers")
	pods := bob.CoreV1().Pods(caribou)

	// No policy, no RBAC: RBAC decides, and says no.
	expectStatus(t, ctx, "bob lists pods before any policy", 403, func(ctx context.Context) error {
		_, err := pods.List(ctx, metav1.ListOptions{})
		return err
	})

	policy(t, ctx, `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-bob-reads-caribou-pods}
spec:
  effect: Allow
  subjects: [{kind: User, name: bob}]
  rules:
  - {namespaces: [`+caribou+`], apiGroups: [""], resources: [pods], readonly: true}
`)
	expectStatus(t, ctx, "bob lists pods in "+caribou, 200, func(ctx context.Context) error {
		_, err := pods.List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := pods.Get(ctx, "nope", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("bob get pod: want 404 (allowed, absent), got %v", err)
	}
	w, err := pods.Watch(ctx, metav1.ListOptions{TimeoutSeconds: ptrInt64(1)})
	if err != nil {
		t.Fatalf("bob watch pods: %v", err)
	}
	w.Stop()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	for name, op := range map[string]func(context.Context) error{
		"create": func(ctx context.Context) error { _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); return err },
		"update": func(ctx context.Context) error { _, err := pods.Update(ctx, pod, metav1.UpdateOptions{}); return err },
		"delete": func(ctx context.Context) error { return pods.Delete(ctx, "p", metav1.DeleteOptions{}) },
		"list in default": func(ctx context.Context) error {
			_, err := bob.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
			return err
		},
	} {
		if err := op(ctx); status(err) != 403 {
			t.Errorf("bob %s: want 403, got %v", name, err)
		}
	}

	// kubectl auth can-i agrees with the real requests.
	kc := tokenKubeconfig(t, token)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "pods", "-n", caribou}, "yes"},
		{[]string{"list", "pods", "-n", caribou}, "yes"},
		{[]string{"watch", "pods", "-n", caribou}, "yes"},
		{[]string{"create", "pods", "-n", caribou}, "no"},
		{[]string{"delete", "pods", "-n", caribou}, "no"},
		{[]string{"list", "pods", "-n", "default"}, "no"},
	} {
		out, _ := kubectl(t, ctx, kc, append([]string{"auth", "can-i"}, c.args...)...)
		if strings.TrimSpace(out) != c.want {
			t.Errorf("kubectl auth can-i %s: %q, want %q", strings.Join(c.args, " "), strings.TrimSpace(out), c.want)
		}
	}

	// Deleting the policy takes effect within the cache TTL.
	deleteObj(t, &authzv1alpha1.AccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-bob-reads-caribou-pods"}})
	expectStatus(t, ctx, "bob lists pods after the policy is deleted", 403, func(ctx context.Context) error {
		_, err := pods.List(ctx, metav1.ListOptions{})
		return err
	})
}

func TestDenyOverridesRBAC(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	root, _ := user(t, ctx, "root")
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-root-cluster-admin"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: "root", APIGroup: "rbac.authorization.k8s.io"}},
	}
	if err := env.Client.Create(ctx, crb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, crb) })
	ensureNamespace(t, ctx, "e2e-doomed")
	expectStatus(t, ctx, "root (cluster-admin by RBAC) gets a namespace", 200, func(ctx context.Context) error {
		_, err := root.CoreV1().Namespaces().Get(ctx, "e2e-doomed", metav1.GetOptions{})
		return err
	})

	policy(t, ctx, `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-no-namespace-deletion}
spec:
  effect: Deny
  subjects: [{kind: User, name: root}]
  rules:
  - {apiGroups: [""], resources: [namespaces], verbs: [delete, deletecollection]}
`)
	err := expectStatus(t, ctx, "root deletes a namespace", 403, func(ctx context.Context) error {
		return root.CoreV1().Namespaces().Delete(ctx, "e2e-doomed", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
	})
	if !strings.Contains(err.Error(), "e2e-no-namespace-deletion") {
		t.Errorf("the 403 does not name the policy: %v", err)
	}
	// Everything else cluster-admin grants still works: the Deny is narrow.
	if _, err := root.CoreV1().Namespaces().Get(ctx, "e2e-doomed", metav1.GetOptions{}); err != nil {
		t.Errorf("root get namespace under the Deny: %v", err)
	}
}

func TestDryRunChangesNothingButIsCounted(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	ensureNamespace(t, ctx, caribou)
	carl, _ := user(t, ctx, "carl")
	policy(t, ctx, `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-carl-allowed}
spec:
  effect: Allow
  subjects: [{kind: User, name: carl}]
  rules: [{namespaces: [`+caribou+`], apiGroups: [""], resources: [configmaps], readonly: true}]
`)
	policy(t, ctx, `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-carl-dryrun-deny}
spec:
  effect: Deny
  enforcement: DryRun
  subjects: [{kind: User, name: carl}]
  rules: [{namespaces: [`+caribou+`], apiGroups: [""], resources: [configmaps], verbs: ["*"]}]
`)
	expectStatus(t, ctx, "carl lists configmaps under a DryRun Deny", 200, func(ctx context.Context) error {
		_, err := carl.CoreV1().ConfigMaps(caribou).List(ctx, metav1.ListOptions{})
		return err
	})
	eventually(t, ctx, "the DryRun would-deny is counted in /metrics", func(ctx context.Context) (bool, error) {
		m, err := scrape(ctx)
		return strings.Contains(m, `portcullis_dryrun_decisions_total{phase="authorize",policy="AccessPolicy/e2e-carl-dryrun-deny",would="deny"}`), err
	})
}

// getPath GETs a non-resource path with a bearer token, or anonymously
// when token is empty; a status other than 200 is an API status error.
func getPath(ctx context.Context, token, path string) error {
	cfg := env.ControlPlane.TokenConfig(token)
	if token == "" {
		cfg = rest.AnonymousClientConfig(cfg)
	}
	rc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+path, nil)
	resp, err := rc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return &apierrors.StatusError{ErrStatus: metav1.Status{Code: int32(resp.StatusCode), Message: resp.Status}}
	}
	return nil
}

func TestNonResourceURLRule(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	_, token := user(t, ctx, "nora")
	// /version is readable by everyone through RBAC's public-info-viewer;
	// /metrics is not.
	expectStatus(t, ctx, "nora reads /version", 200, func(ctx context.Context) error { return getPath(ctx, token, "/version") })
	expectStatus(t, ctx, "nora reads /metrics without a policy", 403, func(ctx context.Context) error { return getPath(ctx, token, "/metrics") })
	policy(t, ctx, `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-nora-metrics}
spec:
  effect: Allow
  subjects: [{kind: User, name: nora}]
  rules: [{nonResourceURLs: ["/metrics", "/livez*"], verbs: [get]}]
`)
	policy(t, ctx, `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-nora-no-version}
spec:
  effect: Deny
  subjects: [{kind: User, name: nora}]
  rules: [{nonResourceURLs: ["/version"], verbs: [get]}]
`)
	expectStatus(t, ctx, "nora reads /metrics with a policy", 200, func(ctx context.Context) error { return getPath(ctx, token, "/metrics") })
	expectStatus(t, ctx, "nora reads /livez/ping by prefix", 200, func(ctx context.Context) error { return getPath(ctx, token, "/livez/ping") })
	expectStatus(t, ctx, "nora reads /version under a Deny", 403, func(ctx context.Context) error { return getPath(ctx, token, "/version") })
}

// TestUnreachedPartsAreReported applies, as an admin with kubectl, a Deny
// whose subjects include an identity the rendered wiring never sends to
// the webhook (kube-scheduler) and anonymous health probes: kubectl shows
// a warning for each, the policy's Ready message names them, and the parts
// that are sent (nora) are enforced. An anonymous GET of /healthz still
// gets its 200 from RBAC: the policy does not apply there, as it says.
func TestUnreachedPartsAreReported(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	_, token := user(t, ctx, "nell")
	const manifest = `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-unreached}
spec:
  effect: Deny
  subjects:
  - {kind: User, name: nell}
  - {kind: User, name: system:kube-scheduler}
  - {kind: Group, name: system:unauthenticated}
  rules: [{nonResourceURLs: ["/healthz", "/version"], verbs: [get]}]
`
	p := &authzv1alpha1.AccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-unreached"}}
	t.Cleanup(func() { deleteObj(t, p) })
	_, stderr, err := kubectlApplyStdin(t, ctx, "", manifest)
	if err != nil {
		t.Fatalf("kubectl apply: %v: %s", err, stderr)
	}
	for _, want := range []string{`user "system:kube-scheduler" is never sent`, `nonResourceURLs "/healthz" does not apply`, `nonResourceURLs "/version" does not apply`} {
		if !strings.Contains(stderr, "Warning: AccessPolicy \"e2e-unreached\" does not apply where the API server never asks the webhook: ") || !strings.Contains(stderr, want) {
			t.Errorf("kubectl apply printed no warning with %q:\n%s", want, stderr)
		}
	}
	waitReady(t, ctx, p)
	msg := meta.FindStatusCondition(p.Status.Conditions, authzv1alpha1.ConditionReady).Message
	if !strings.Contains(msg, `user "system:kube-scheduler" is never sent`) || !strings.Contains(msg, `nonResourceURLs "/healthz" does not apply`) {
		t.Errorf("Ready message does not name what is not enforced: %s", msg)
	}
	// What is sent is enforced; what is not, RBAC answers.
	expectStatus(t, ctx, "nell reads /version under the Deny", 403, func(ctx context.Context) error { return getPath(ctx, token, "/version") })
	if err := getPath(ctx, "", "/healthz"); err != nil {
		t.Errorf("anonymous GET /healthz under a Deny that cannot reach it: %v", err)
	}
}

func TestConditionsAndInvalidCEL(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	ensureNamespace(t, ctx, caribou)
	cara, _ := user(t, ctx, "cara")
	policy(t, ctx, `
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-cara-caribou-names}
spec:
  effect: Allow
  subjects: [{kind: User, name: cara}]
  rules: [{namespaces: [`+caribou+`], apiGroups: [""], resources: [configmaps], verbs: [get]}]
  conditions:
  - {expression: "request.resourceAttributes.name.startsWith('caribou-')", message: "only caribou- names"}
`)
	expectStatus(t, ctx, "cara gets caribou-x (absent, so 404 once allowed)", 404, func(ctx context.Context) error {
		_, err := cara.CoreV1().ConfigMaps(caribou).Get(ctx, "caribou-x", metav1.GetOptions{})
		return err
	})
	if _, err := cara.CoreV1().ConfigMaps(caribou).Get(ctx, "other", metav1.GetOptions{}); status(err) != 403 {
		t.Errorf("cara gets other: want 403, got %v", err)
	}

	err := env.Apply(ctx, []byte(`
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-bad-cel}
spec:
  effect: Deny
  subjects: [{kind: User, name: cara}]
  rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
  conditions: [{expression: "request.resourceAttributes.name.startsWith("}]
`))
	if err == nil || !strings.Contains(err.Error(), "spec.conditions[0].expression") {
		t.Fatalf("invalid CEL: want a refusal naming spec.conditions[0].expression, got %v", err)
	}
}

func TestEscalationIsRefused(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	ensureNamespace(t, ctx, caribou)
	_, token := user(t, ctx, "eve")
	// eve may manage AccessPolicies (RBAC) and read pods in caribou (RBAC),
	// nothing more.
	rbac := fmt.Sprintf(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-policy-author}
rules:
- {apiGroups: [authorization.portcullis.io], resources: [accesspolicies], verbs: [get, list, create, update, patch, delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-eve-policy-author}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-policy-author}
subjects: [{kind: User, name: eve, apiGroup: rbac.authorization.k8s.io}]
---
# A Role, not the built-in view ClusterRole: view is filled by
# kube-controller-manager's aggregation controller, which this control
# plane does not run.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: e2e-pod-reader, namespace: %[1]s}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: e2e-eve-view, namespace: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: e2e-pod-reader}
subjects: [{kind: User, name: eve, apiGroup: rbac.authorization.k8s.io}]
`, caribou)
	apply(t, ctx, rbac)
	t.Cleanup(func() {
		deleteObj(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "e2e-policy-author"}})
		deleteObj(t, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-eve-policy-author"}})
		deleteObj(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: caribou, Name: "e2e-eve-view"}})
		deleteObj(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: caribou, Name: "e2e-pod-reader"}})
	})
	kc := tokenKubeconfig(t, token)
	write := func(name, rule string) (string, error) { return writeAllowForMallory(t, ctx, kc, name, rule) }
	// Granting what eve has is fine.
	var out string
	var err error
	eventually(t, ctx, "eve may create policies (RBAC)", func(ctx context.Context) (bool, error) {
		out, err = write("e2e-eve-ok", `{namespaces: [`+caribou+`], apiGroups: [""], resources: [pods], readonly: true}`)
		return err == nil, err
	})
	// Granting more is refused at apply, with a message that says what.
	out, err = write("e2e-eve-escalates", `{namespaces: [`+caribou+`], apiGroups: [""], resources: [pods], verbs: [delete]}`)
	if err == nil {
		t.Fatalf("escalation accepted: %s", out)
	}
	for _, want := range []string{"escalation refused", "delete pods in namespace " + caribou} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
}

func ptrInt64(v int64) *int64 { return &v }

// TestEscalationCheckAsksWhatIsServed: the check on writing an Allow asks
// the API server about what the Allow serves, and the answers are the
// chain's (a Deny of ours, then RBAC), so an author kept out of a
// namespace by a Deny cannot give away everything everywhere, which
// includes that namespace; and an RBAC rule "pods/*", which RBAC reads
// literally and which grants no real subresource, does not let its holder
// give away pods/exec.
func TestEscalationCheckAsksWhatIsServed(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	ensureNamespace(t, ctx, caribou)
	erin, erinToken := user(t, ctx, "erin")
	_, frankToken := user(t, ctx, "frank")
	apply(t, ctx, fmt.Sprintf(`
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-everything}
rules:
- {apiGroups: [""], resources: ["*"], verbs: ["*"]}
# Not escalate, which would let her write any AccessPolicy.
- {apiGroups: [authorization.portcullis.io], resources: [accesspolicies], verbs: [get, create, delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-erin-everything}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-everything}
subjects: [{kind: User, name: erin, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-frank-policy-author}
rules: [{apiGroups: [authorization.portcullis.io], resources: [accesspolicies], verbs: [get, create, delete]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-frank-policy-author}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-frank-policy-author}
subjects: [{kind: User, name: frank, apiGroup: rbac.authorization.k8s.io}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: e2e-pods-star, namespace: %[1]s}
rules: [{apiGroups: [""], resources: ["pods/*", "pods/log"], verbs: [create, get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: e2e-frank-pods-star, namespace: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: e2e-pods-star}
subjects: [{kind: User, name: frank, apiGroup: rbac.authorization.k8s.io}]
`, caribou))
	t.Cleanup(func() {
		for _, name := range []string{"e2e-everything", "e2e-frank-policy-author"} {
			deleteObj(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}})
		}
		for _, name := range []string{"e2e-erin-everything", "e2e-frank-policy-author"} {
			deleteObj(t, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}})
		}
		deleteObj(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: caribou, Name: "e2e-frank-pods-star"}})
		deleteObj(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: caribou, Name: "e2e-pods-star"}})
	})
	policy(t, ctx, fmt.Sprintf(`
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-erin-not-in-caribou}
spec:
  effect: Deny
  subjects: [{kind: User, name: erin}]
  rules: [{namespaces: [%s], apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
`, caribou))
	expectStatus(t, ctx, "erin (the core group by RBAC) lists pods in caribou under the Deny", 403, func(ctx context.Context) error {
		_, err := erin.CoreV1().Pods(caribou).List(ctx, metav1.ListOptions{})
		return err
	})

	write := func(token, name, rule string) error {
		_, err := writeAllowForMallory(t, ctx, tokenKubeconfig(t, token), name, rule)
		return err
	}
	refused := func(who string, err error, wants ...string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: escalation accepted", who)
			return
		}
		for _, want := range append([]string{"escalation refused"}, wants...) {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: refusal %q does not say %q", who, err, want)
			}
		}
	}
	// What erin holds outside caribou she may give away.
	if err := write(erinToken, "e2e-erin-gives-kube-public", `{namespaces: [kube-public], apiGroups: [""], resources: [configmaps], readonly: true}`); err != nil {
		t.Fatalf("erin gives what she holds: %v", err)
	}
	refused("erin gives the core group everywhere", write(erinToken, "e2e-erin-gives-everything", `{apiGroups: [""], resources: ["*"], verbs: ["*"]}`))
	refused("erin gives pods in every namespace", write(erinToken, "e2e-erin-gives-all-pods", `{apiGroups: [""], resources: [pods], readonly: true}`), "pods")

	// frank holds pods/log, which he may give away, and RBAC's literal
	// "pods/*", which grants no real subresource.
	if err := write(frankToken, "e2e-frank-gives-log", fmt.Sprintf(`{namespaces: [%s], apiGroups: [""], resources: [pods/log], verbs: [get]}`, caribou)); err != nil {
		t.Fatalf("frank gives what he holds: %v", err)
	}
	refused("frank gives every subresource of pods", write(frankToken, "e2e-frank-gives-pods-star", fmt.Sprintf(`{namespaces: [%s], apiGroups: [""], resources: ["pods/*"], verbs: [create]}`, caribou)))
}

// writeAllowForMallory applies, with kubeconfig, an Allow AccessPolicy
// named name that gives the user mallory rule, removed at cleanup.
func writeAllowForMallory(t *testing.T, ctx context.Context, kubeconfig, name, rule string) (string, error) {
	t.Helper()
	f := t.TempDir() + "/p.yaml"
	if err := writeFile(f, fmt.Sprintf(`
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: %s}
spec:
  effect: Allow
  subjects: [{kind: User, name: mallory}]
  rules: [%s]
`, name, rule)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, &authzv1alpha1.AccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}) })
	return kubectl(t, ctx, kubeconfig, "apply", "-f", f)
}
