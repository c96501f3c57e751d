package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	reportsv1alpha2 "github.com/portcullis-io/portcullis/api/wgpolicyk8s/v1alpha2"
)

// A ValidationPolicy in Audit over a namespace whose pods already exist:
// the background audit lists the violating pod in the namespace's
// PolicyReport, counts it in the policy's status, and clears it once the
// pod is fixed; a pod that goes takes its result with it.
func TestAuditReportsExistingViolations(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	setAuditInterval(t, ctx, "5s")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "audit-e2e"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, ns) })
	mkPod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name, Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "registry.example/c:1"}}}}
	}
	orphan, web := mkPod("orphan", nil), mkPod("web", map[string]string{"team": "web"})
	for _, p := range []*corev1.Pod{orphan, web} {
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	policy := &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "audit-team-label"}, Spec: admissionv1alpha1.ValidationPolicySpec{
		Match: admissionv1alpha1.Match{
			// Secrets too, which the audit never reads, and says so.
			Resources: []admissionv1alpha1.ResourceRule{{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods", "secrets"},
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns.Name}},
		},
		Action: admissionv1alpha1.ActionAudit,
		Validations: []admissionv1alpha1.Validation{{
			Expression: "has(object.metadata.labels) && 'team' in object.metadata.labels",
			Message:    "a pod names its team"}},
	}}
	if err := env.Client.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, policy) })
	waitAdmissionReady(t, ctx, policy)

	report := &reportsv1alpha2.PolicyReport{}
	within(t, ctx, time.Minute, "the PolicyReport lists the unlabelled pod", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "portcullis-audit"}, report); err != nil {
			return false, err
		}
		s := report.Summary
		return s.Fail == 1 && s.Pass == 1 && len(report.Results) == 1 && report.Results[0].Resources[0].Name == orphan.Name &&
			report.Results[0].Policy == policy.Name && report.Results[0].Result == reportsv1alpha2.StatusFail &&
			report.Results[0].Message == "a pod names its team", fmt.Errorf("report %+v", report)
	})
	within(t, ctx, 30*time.Second, "the policy's status counts the violation", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
			return false, err
		}
		a := policy.Status.Audit
		return a != nil && a.Violations == 1 && a.Audited == 2 && strings.Contains(a.Message, "Secrets are never read"), fmt.Errorf("status.audit %+v", a)
	})

	// Fixed: the pod gets its label; its result goes with the next audit.
	if err := env.Client.Patch(ctx, orphan, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"team":"ops"}}}`))); err != nil {
		t.Fatal(err)
	}
	reportIs := func(what string, pass int) {
		t.Helper()
		within(t, ctx, time.Minute, what, func(ctx context.Context) (bool, error) {
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "portcullis-audit"}, report); err != nil {
				return false, err
			}
			return report.Summary.Fail == 0 && report.Summary.Pass == pass && len(report.Results) == 0, fmt.Errorf("report summary %+v, %d results", report.Summary, len(report.Results))
		})
	}
	reportIs("the report no longer lists the fixed pod", 2)
	within(t, ctx, 30*time.Second, "the policy's status counts no violation", func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(policy), policy); err != nil {
			return false, err
		}
		a := policy.Status.Audit
		return a != nil && a.Violations == 0 && a.Audited == 2, fmt.Errorf("status.audit %+v", a)
	})

	// Gone: a deleted pod is not counted.
	if err := env.Client.Delete(ctx, web, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	reportIs("the report no longer counts the deleted pod", 1)
}

// With the interval far off, a change of a policy's parameter object is
// what audits again: a ConfigMap names the forbidden pod, and renaming it
// moves the violation.
func TestAuditFollowsParameterChanges(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	setAuditInterval(t, ctx, "1h")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "audit-params-e2e"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, ns) })
	for _, name := range []string{"alpha", "beta"} {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/c:1"}}}}
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	params := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "audit-forbidden", Namespace: ns.Name}, Data: map[string]string{"name": "alpha"}}
	if err := env.Client.Create(ctx, params); err != nil {
		t.Fatal(err)
	}
	policy := &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "audit-forbidden-name"}, Spec: admissionv1alpha1.ValidationPolicySpec{
		ParamKind: &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
		ParamRef:  &admissionregistrationv1.ParamRef{Name: "audit-forbidden", ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction)},
		Match: admissionv1alpha1.Match{
			Resources: []admissionv1alpha1.ResourceRule{{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns.Name}},
		},
		Action:      admissionv1alpha1.ActionAudit,
		Validations: []admissionv1alpha1.Validation{{Expression: "object.metadata.name != params.data.name", Message: "a forbidden name"}},
	}}
	if err := env.Client.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteObj(t, policy) })
	waitAdmissionReady(t, ctx, policy)
	violator := func(want string) {
		t.Helper()
		report := &reportsv1alpha2.PolicyReport{}
		within(t, ctx, time.Minute, "the report names "+want, func(ctx context.Context) (bool, error) {
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "portcullis-audit"}, report); err != nil {
				return false, err
			}
			return len(report.Results) == 1 && report.Results[0].Resources[0].Name == want, fmt.Errorf("results %+v", report.Results)
		})
	}
	violator("alpha")
	params.Data["name"] = "beta"
	if err := env.Client.Update(ctx, params); err != nil {
		t.Fatal(err)
	}
	violator("beta")
}

// setAuditInterval sets the WebhookBundle's audit interval for the test.
func setAuditInterval(t *testing.T, ctx context.Context, interval string) {
	t.Helper()
	bundle := &operatorv1alpha1.WebhookBundle{ObjectMeta: metav1.ObjectMeta{Name: operatorv1alpha1.DefaultName}}
	if err := env.Client.Patch(ctx, bundle, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"admission":{"audit":{"interval":"`+interval+`"}}}}`))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = env.Client.Patch(context.Background(), bundle, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"admission":{"audit":{"interval":null}}}}`)))
	})
}
