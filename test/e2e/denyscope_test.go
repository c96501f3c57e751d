package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// A Deny limited to one namespace, by name or by namespaceSelector, cannot
// be side-stepped by listing or watching across every namespace: a user
// whom RBAC lets read secrets cluster-wide gets 403 for `get secrets -A`
// and for a watch across namespaces, still reads the other namespaces one
// by one, and lists cluster-scoped resources as before.
func TestDenyCoversRequestsAcrossNamespaces(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	const prod, dev = "e2e-scope-prod", "e2e-scope-dev"
	for _, ns := range []string{prod, dev} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"e2e-scope": strings.TrimPrefix(ns, "e2e-scope-")}}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteObj(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })
		if err := env.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"}, StringData: map[string]string{"password": "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	// RBAC: read secrets and nodes everywhere.
	grantRBAC(t, ctx, "e2e-secret-reader", "sam",
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets", "nodes"}, Verbs: []string{"get", "list", "watch"}})
	sam, token := user(t, ctx, "sam")
	kc := tokenKubeconfig(t, token)
	expectStatus(t, ctx, "sam lists secrets across namespaces before any Deny", 200, func(ctx context.Context) error {
		_, err := sam.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
		return err
	})

	for _, scope := range []struct{ name, spec string }{
		{"namespaces", fmt.Sprintf(`
  rules: [{namespaces: [%s], apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]`, prod)},
		{"namespaceSelector", `
  namespaceSelector: {matchLabels: {e2e-scope: prod}}
  rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]`},
	} {
		t.Run(scope.name, func(t *testing.T) {
			name := "e2e-deny-prod-by-" + strings.ToLower(scope.name)
			policy(t, ctx, fmt.Sprintf(`
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: %s}
spec:
  effect: Deny
  subjects: [{kind: User, name: sam}]%s
`, name, scope.spec))

			err := expectStatus(t, ctx, "sam lists secrets across namespaces", 403, func(ctx context.Context) error {
				_, err := sam.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
				return err
			})
			if msg := err.Error(); !strings.Contains(msg, name) || !strings.Contains(msg, "across all namespaces") {
				t.Errorf("the 403 does not name the policy and say why: %v", err)
			}
			if _, err := kubectl(t, ctx, kc, "get", "secrets", "-A"); err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("kubectl get secrets -A: %v, want forbidden by %s", err, name)
			}
			w, err := sam.CoreV1().Secrets("").Watch(ctx, metav1.ListOptions{})
			if status(err) != 403 {
				if w != nil {
					w.Stop()
				}
				t.Errorf("sam watches secrets across namespaces: %v, want 403", err)
			}
			if _, err := sam.CoreV1().Secrets(prod).List(ctx, metav1.ListOptions{}); status(err) != 403 {
				t.Errorf("sam lists secrets in %s: %v, want 403", prod, err)
			}
			// The other namespace, one by one, and cluster-scoped lists are
			// not covered.
			if out, err := kubectl(t, ctx, kc, "get", "secrets", "-n", dev, "-o", "name"); err != nil || strings.TrimSpace(out) != "secret/db" {
				t.Errorf("kubectl get secrets -n %s: %q, %v", dev, out, err)
			}
			if _, err := sam.CoreV1().Secrets(dev).Watch(ctx, metav1.ListOptions{TimeoutSeconds: ptrInt64(1)}); err != nil {
				t.Errorf("sam watches secrets in %s: %v", dev, err)
			}
			// Across namespaces but kept to dev by a field selector: the
			// API server sends the selector in the review.
			if _, err := sam.CoreV1().Secrets("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.namespace=" + dev}); err != nil {
				t.Errorf("sam lists secrets across namespaces with a field selector for %s: %v", dev, err)
			}
			if _, err := sam.CoreV1().Secrets("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.namespace=" + prod}); status(err) != 403 {
				t.Errorf("sam lists secrets across namespaces with a field selector for %s: %v, want 403", prod, err)
			}
			if _, err := sam.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
				t.Errorf("sam lists nodes (cluster-scoped): %v", err)
			}
			deleteObj(t, &authzv1alpha1.AccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}})
			expectStatus(t, ctx, "sam lists secrets across namespaces once the Deny is gone", 200, func(ctx context.Context) error {
				_, err := sam.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
				return err
			})
		})
	}
}

// An Allow for cluster-scoped requests and one namespace (namespaces:
// ["", a]) answers as RBAC's nearest form, a ClusterRoleBinding for the
// cluster-scoped resource and a RoleBinding in the namespace, side by
// side on the same API server: a list of Secrets across every namespace
// is not a cluster-scoped request, and reads other namespaces' Secrets.
func TestClusterScopedAllowIsNotEveryNamespace(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	const a, b = "e2e-cluster-only-a", "e2e-cluster-only-b"
	for _, ns := range []string{a, b} {
		if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteObj(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}) })
	}
	// RBAC's rita: nodes cluster-wide, secrets in a.
	nodes := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}}
	secrets := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}}
	grantRBAC(t, ctx, "e2e-cluster-only-nodes", "rita", nodes)
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: a, Name: "e2e-secrets"}, Rules: []rbacv1.PolicyRule{secrets}}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: a, Name: "e2e-secrets"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "rita"}}}
	for _, o := range []client.Object{role, rb} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	// Portcullis's cleo: the same in one rule.
	policy(t, ctx, fmt.Sprintf(`
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: e2e-cluster-only}
spec:
  effect: Allow
  subjects: [{kind: User, name: cleo}]
  rules: [{namespaces: ["", %s], apiGroups: [""], resources: [secrets, nodes], readonly: true}]
`, a))
	rita, ritaToken := user(t, ctx, "rita")
	cleo, cleoToken := user(t, ctx, "cleo")
	expectStatus(t, ctx, "cleo lists secrets in "+a, 200, func(ctx context.Context) error {
		_, err := cleo.CoreV1().Secrets(a).List(ctx, metav1.ListOptions{})
		return err
	})
	for _, c := range []struct {
		what string
		op   func(ctx context.Context, cs *kubernetes.Clientset) error
		want int
	}{
		{"list secrets in " + a, func(ctx context.Context, cs *kubernetes.Clientset) error {
			_, err := cs.CoreV1().Secrets(a).List(ctx, metav1.ListOptions{})
			return err
		}, 200},
		{"list secrets in " + b, func(ctx context.Context, cs *kubernetes.Clientset) error {
			_, err := cs.CoreV1().Secrets(b).List(ctx, metav1.ListOptions{})
			return err
		}, 403},
		{"list secrets across namespaces", func(ctx context.Context, cs *kubernetes.Clientset) error {
			_, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
			return err
		}, 403},
		{"watch secrets across namespaces", func(ctx context.Context, cs *kubernetes.Clientset) error {
			w, err := cs.CoreV1().Secrets("").Watch(ctx, metav1.ListOptions{TimeoutSeconds: ptrInt64(1)})
			if w != nil {
				w.Stop()
			}
			return err
		}, 403},
		{"list nodes", func(ctx context.Context, cs *kubernetes.Clientset) error {
			_, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			return err
		}, 200},
	} {
		got := map[string]int{"rbac": status(c.op(ctx, rita)), "portcullis": status(c.op(ctx, cleo))}
		if got["rbac"] != c.want || got["portcullis"] != c.want {
			t.Errorf("%s: %v, want %d from both", c.what, got, c.want)
		}
	}
	for name, token := range map[string]string{"rita": ritaToken, "cleo": cleoToken} {
		out, _ := kubectl(t, ctx, tokenKubeconfig(t, token), "auth", "can-i", "list", "secrets", "--all-namespaces")
		if strings.TrimSpace(out) != "no" {
			t.Errorf("%s: kubectl auth can-i list secrets --all-namespaces: %q, want no", name, out)
		}
	}
}
