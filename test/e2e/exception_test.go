package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// A PolicyException exempts one Deployment's pods from one policy: the
// ReplicaSet controller creates the exempted Deployment's privileged pod
// and is refused the other's. Writing an exception needs the right to
// update the policy it names; after expiresAt it exempts nothing.
func TestPolicyExceptionExemptsOneDeployment(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	ns := "e2e-pex"
	ensureNamespace(t, ctx, ns)
	admissionPolicy(t, ctx, `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: e2e-pex-no-privileged}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: `+ns+`}}
  validations:
  - expression: "object.spec.containers.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || c.securityContext.privileged != true)"
    message: "privileged containers are not allowed"
`)
	waitWebhookRules(t, ctx, false, "pods")

	// Refused to an author who may create exceptions but not update the
	// policy; allowed once they may.
	_, token := user(t, ctx, "pex-author")
	kc := tokenKubeconfig(t, token)
	grantRBAC(t, ctx, "e2e-pex-author", "pex-author",
		rbacv1.PolicyRule{APIGroups: []string{admissionv1alpha1.GroupVersion.Group}, Resources: []string{"policyexceptions"}, Verbs: []string{"get", "create", "update", "patch", "delete"}})
	exception := `apiVersion: admission.portcullis.io/v1alpha1
kind: PolicyException
metadata: {name: e2e-pex-web}
spec:
  policies: [{kind: ValidationPolicy, name: e2e-pex-no-privileged}]
  match:
    namespaces: [` + ns + `]
    objectSelector: {matchLabels: {app: exempt-me}}
  reason: "the web tier needs privileged mode until ticket 42 is done"
`
	t.Cleanup(func() {
		deleteObj(t, &admissionv1alpha1.PolicyException{ObjectMeta: metav1.ObjectMeta{Name: "e2e-pex-web"}})
	})
	if _, stderr, err := kubectlApplyStdin(t, ctx, kc, exception); err == nil || !strings.Contains(stderr, `update validationpolicies.admission.portcullis.io e2e-pex-no-privileged`) {
		t.Fatalf("an author who may not update the policy: %v %s", err, stderr)
	}
	grantRBAC(t, ctx, "e2e-pex-author-update", "pex-author",
		rbacv1.PolicyRule{APIGroups: []string{admissionv1alpha1.GroupVersion.Group}, Resources: []string{"validationpolicies"}, ResourceNames: []string{"e2e-pex-no-privileged"}, Verbs: []string{"update"}})
	eventually(t, ctx, "an author who may update the policy writes the exception", func(ctx context.Context) (bool, error) {
		_, stderr, err := kubectlApplyStdin(t, ctx, kc, exception)
		return err == nil, fmt.Errorf("%v: %s", err, stderr)
	})
	var x admissionv1alpha1.PolicyException
	eventually(t, ctx, "the exception is Ready", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "e2e-pex-web"}, &x); err != nil {
			return false, err
		}
		for _, c := range x.Status.Conditions {
			if c.Type == admissionv1alpha1.ConditionReady && c.ObservedGeneration == x.Generation {
				return c.Status == metav1.ConditionTrue, fmt.Errorf("%s: %s", c.Reason, c.Message)
			}
		}
		return false, nil
	})

	// With Auto, the exception regenerates the native policy: wait until
	// it is in force, whoever runs it.
	vp := &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "e2e-pex-no-privileged"}}
	waitAdmissionReady(t, ctx, vp)
	onWebhook := vp.Status.Execution != nil && vp.Status.Execution.Mode == admissionv1alpha1.ExecutionWebhook

	deployment := func(app string) *appsv1.Deployment {
		labels := map[string]string{"app": app}
		return &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name: "app", Image: "registry.example/app:1",
						SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
					}}},
				},
			},
		}
	}
	for _, app := range []string{"exempt-me", "not-me"} {
		d := deployment(app)
		if err := env.Client.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteObj(t, d) })
	}
	pods := func(ctx context.Context, app string) int {
		var l corev1.PodList
		if err := env.Client.List(ctx, &l, client.InNamespace(ns), client.MatchingLabels{"app": app}); err != nil {
			return -1
		}
		return len(l.Items)
	}
	eventually(t, ctx, "the ReplicaSet controller creates the exempted Deployment's privileged pod", func(ctx context.Context) (bool, error) {
		return pods(ctx, "exempt-me") == 1, nil
	})
	eventually(t, ctx, "the other Deployment's pod is refused by the policy", func(ctx context.Context) (bool, error) {
		var rs appsv1.ReplicaSetList
		if err := env.Client.List(ctx, &rs, client.InNamespace(ns), client.MatchingLabels{"app": "not-me"}); err != nil || len(rs.Items) == 0 {
			return false, err
		}
		for _, c := range rs.Items[0].Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure && strings.Contains(c.Message, "privileged containers are not allowed") {
				return true, nil
			}
		}
		return false, fmt.Errorf("conditions %v", rs.Items[0].Status.Conditions)
	})
	if n := pods(ctx, "not-me"); n != 0 {
		t.Fatalf("%d pods of the Deployment that is not exempted", n)
	}
	// Only the webhook's decisions are counted: the API server's are not
	// the operator's to see.
	if onWebhook {
		exemptionCounted(t, ctx)
	}

	// After expiresAt it exempts nothing.
	expires := metav1.NewTime(time.Now().Add(3 * time.Second).Truncate(time.Second).Add(time.Second))
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "e2e-pex-web"}, &x); err != nil {
		t.Fatal(err)
	}
	x.Spec.ExpiresAt = &expires
	if err := env.Client.Update(ctx, &x); err != nil {
		t.Fatal(err)
	}
	privileged := func(name string) error {
		return env.Client.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "exempt-me"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "registry.example/app:1", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
			}}},
		})
	}
	time.Sleep(time.Until(expires.Time) + time.Second)
	err := privileged("after-expiry")
	if err == nil || !strings.Contains(err.Error(), "privileged containers are not allowed") {
		t.Fatalf("after expiresAt: %v, want refused by the policy", err)
	}
	eventually(t, ctx, "the exception reports Expired", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "e2e-pex-web"}, &x); err != nil {
			return false, err
		}
		for _, c := range x.Status.Conditions {
			if c.Type == admissionv1alpha1.ConditionReady {
				return c.Reason == admissionv1alpha1.ReasonExpired, fmt.Errorf("%s: %s", c.Reason, c.Message)
			}
		}
		return false, nil
	})
}

func exemptionCounted(t *testing.T, ctx context.Context) {
	t.Helper()
	eventually(t, ctx, "the exemption is counted with the exception's name", func(ctx context.Context) (bool, error) {
		m, err := scrape(ctx)
		var lines []string
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "portcullis_policy_exemptions_total{") {
				lines = append(lines, l)
			}
		}
		return err == nil && strings.Contains(m, `portcullis_policy_exemptions_total{exception="PolicyException/e2e-pex-web",phase="validate",policy="ValidationPolicy/e2e-pex-no-privileged"}`), fmt.Errorf("%v: %v", err, lines)
	})
}
