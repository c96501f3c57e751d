package audit

import (
	"context"
	"fmt"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/admission"
)

var (
	pods    = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	secrets = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

func policy(t *testing.T, name string, action admissionv1alpha1.Action, resource, expression, messageExpression string) *admission.CompiledValidation {
	t.Helper()
	c, err := admission.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	p := &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name)}, Spec: admissionv1alpha1.ValidationPolicySpec{
		Match: admissionv1alpha1.Match{Resources: []admissionv1alpha1.ResourceRule{{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{resource},
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}}},
		Action:      action,
		Validations: []admissionv1alpha1.Validation{{Expression: expression, Message: "static message", MessageExpression: messageExpression}},
	}}
	compiled, errs := admission.CompileValidationPolicy(c, p)
	if len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	return compiled
}

func pod(ns, name string, privileged bool) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": name, "namespace": ns, "uid": ns + "-" + name},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "x", "securityContext": map[string]any{"privileged": privileged}}}},
	}}
}

var namespaces = admission.Namespaces{
	"team-a": {ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, "team-b": {ObjectMeta: metav1.ObjectMeta{Name: "team-b"}},
	"kube-system": {ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}},
}

const notPrivileged = "object.spec.containers.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || !c.securityContext.privileged)"

// Every action is audited, each with its outcome; passes are counted, not
// listed; a report per namespace; excluded namespaces are not audited.
func TestAuditOutcomesAndReports(t *testing.T) {
	a := New(map[string]*admission.CompiledValidation{
		"deny":  policy(t, "deny", admissionv1alpha1.ActionDeny, "pods", notPrivileged, ""),
		"warn":  policy(t, "warn", admissionv1alpha1.ActionWarn, "pods", notPrivileged, ""),
		"audit": policy(t, "audit", admissionv1alpha1.ActionAudit, "pods", notPrivileged, ""),
		"error": policy(t, "error", admissionv1alpha1.ActionDeny, "pods", "object.spec.nothing == 1", ""),
	}, namespaces, nil, nil, []string{"kube-system"})
	reports := NewReports(100)
	for _, o := range []*unstructured.Unstructured{pod("team-a", "root", true), pod("team-a", "web", false), pod("team-b", "root", true), pod("kube-system", "root", true)} {
		res, err := a.Audit(context.Background(), o, pods)
		if err != nil {
			t.Fatal(err)
		}
		reports.Add(res)
	}
	got := reports.Reports()
	if len(got) != 2 || got[0].Namespace != "team-a" || got[1].Namespace != "team-b" {
		t.Fatalf("reports %+v", got)
	}
	a0 := got[0]
	if a0.Summary != (Summary{Pass: 3, Fail: 2, Warn: 1, Error: 2}) {
		t.Errorf("team-a summary %+v", a0.Summary)
	}
	outcomes := map[string]Outcome{}
	for _, r := range a0.Results {
		if r.Object.Name == "root" {
			outcomes[r.Policy] = r.Outcome
		}
		if r.Outcome == Pass {
			t.Errorf("a pass is listed: %+v", r)
		}
	}
	if outcomes["deny"] != Fail || outcomes["audit"] != Fail || outcomes["warn"] != Warn || outcomes["error"] != Error {
		t.Errorf("outcomes of team-a/root %v", outcomes)
	}
	if n := reports.Violations("deny"); n != 2 {
		t.Errorf("deny violated by %d objects, want 2 (team-a/root, team-b/root; kube-system excluded)", n)
	}
	if n := reports.Violations("error"); n != 0 {
		t.Errorf("an evaluation error counted as a violation: %d", n)
	}
}

// A report holds at most its cap of results and counts the rest, so its
// size does not grow with the namespace.
func TestReportsAreCapped(t *testing.T) {
	a := New(map[string]*admission.CompiledValidation{"deny": policy(t, "deny", admissionv1alpha1.ActionDeny, "pods", notPrivileged, "")}, namespaces, nil, nil, nil)
	reports := NewReports(10)
	for i := range 250 {
		res, err := a.Audit(context.Background(), pod("team-a", fmt.Sprintf("p%03d", i), true), pods)
		if err != nil {
			t.Fatal(err)
		}
		reports.Add(res)
	}
	r := reports.Reports()[0]
	if len(r.Results) != 10 || r.Omitted != 240 || r.Summary.Fail != 250 || reports.Audited() != 250 {
		t.Errorf("%d results, %d omitted, summary %+v, audited %d", len(r.Results), r.Omitted, r.Summary, reports.Audited())
	}
}

// A Secret's result never carries its message: a message expression may
// quote the data.
func TestSecretMessagesNeverCarryData(t *testing.T) {
	a := New(map[string]*admission.CompiledValidation{
		"no-password": policy(t, "no-password", admissionv1alpha1.ActionDeny, "secrets", "!has(object.data.password)", "'found ' + object.data.password"),
	}, namespaces, nil, nil, nil)
	s := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "team-a"},
		Data: map[string][]byte{"password": []byte("hunter2")}}
	u := &unstructured.Unstructured{}
	var err error
	if u.Object, err = toUnstructured(s); err != nil {
		t.Fatal(err)
	}
	res, err := a.Audit(context.Background(), u, secrets)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Outcome != Fail {
		t.Fatalf("results %+v", res)
	}
	if strings.Contains(res[0].Message, "hunter2") || strings.Contains(res[0].Message, "aHVudGVyMg") {
		t.Errorf("the result carries the Secret's data: %q", res[0].Message)
	}
}

func toUnstructured(o any) (map[string]any, error) {
	return runtimeDefault.ToUnstructured(o)
}

var runtimeDefault = runtime.DefaultUnstructuredConverter
