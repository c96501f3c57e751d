package admission

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	reportsv1alpha2 "github.com/portcullis-io/portcullis/api/wgpolicyk8s/v1alpha2"
	engine "github.com/portcullis-io/portcullis/internal/admission"
)

// auditFixture is one audit run's world: policies on pods, the
// namespaces, the pods and the webhook's engines, with a fake client for
// the reports and statuses (funcs intercepts its calls).
type auditFixture struct {
	pair    *engine.Engines
	client  client.Client
	auditor *auditor
}

func podsPolicy(name, expr string) *admissionv1alpha1.ValidationPolicy {
	rule := []admissionv1alpha1.ResourceRule{{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}}
	return &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Generation: 1},
		Spec: admissionv1alpha1.ValidationPolicySpec{Match: admissionv1alpha1.Match{Resources: rule},
			Validations: []admissionv1alpha1.Validation{{Expression: expr, Message: name + " says no"}}}}
}

func auditPod(namespace string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "p", "namespace": namespace, "uid": "pod-" + namespace},
		"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "x"}}}}}
}

func newAuditFixture(t *testing.T, ns engine.Namespaces, policies []*admissionv1alpha1.ValidationPolicy, pods []*unstructured.Unstructured, funcs interceptor.Funcs) *auditFixture {
	t.Helper()
	compiler, err := engine.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	pair := engine.NewEngines(ns, nil)
	objs := []client.Object{}
	for _, p := range policies {
		c, _ := engine.CompileValidationPolicy(compiler, p) // broken ones are served too
		pair.Validations.Set(p.Name, c)
		objs = append(objs, p)
	}
	pair.MarkReady()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, admissionv1alpha1.AddToScheme, reportsv1alpha2.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(objs...).WithInterceptorFuncs(funcs).Build()
	podsGVR := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	listed := make([]runtime.Object, 0, len(pods))
	for _, p := range pods {
		listed = append(listed, p)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{podsGVR: "PodList"}, listed...)
	mapper := apimeta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, apimeta.RESTScopeNamespace)
	g, err := auditViolations(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &auditFixture{pair: pair, client: c, auditor: &auditor{client: c, validations: pair.Validations, now: time.Now, violations: g,
		deps: AuditDeps{Namespaces: ns, Dynamic: dyn, Mapper: mapper, Exceptions: pair.Validation}}}
}

func (f *auditFixture) policy(t *testing.T, name string) *admissionv1alpha1.ValidationPolicy {
	t.Helper()
	var vp admissionv1alpha1.ValidationPolicy
	if err := f.client.Get(context.Background(), client.ObjectKey{Name: name}, &vp); err != nil {
		t.Fatal(err)
	}
	return &vp
}

func liveNamespaces(names ...string) engine.Namespaces {
	ns := engine.Namespaces{}
	for _, n := range names {
		ns[n] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{corev1.LabelMetadataName: n}}}
	}
	return ns
}

// A policy that does not compile is served for its failure policy (Fail
// denies what it matches): the audit reports an error of it for what the
// webhook would deny, not a pass, and writes its status.audit.
func TestAuditBrokenPolicyIsAuditedAsTheWebhookServesIt(t *testing.T) {
	good, broken := podsPolicy("good", "true"), podsPolicy("broken", "true")
	broken.Spec.Match.ObjectSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bogus"}}}
	pod := auditPod("default")
	f := newAuditFixture(t, liveNamespaces("default"), []*admissionv1alpha1.ValidationPolicy{good, broken}, []*unstructured.Unstructured{pod}, interceptor.Funcs{})

	raw, err := pod.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	res := f.pair.Validation.Validate(context.Background(), &admissionv1.AdmissionRequest{UID: "u",
		Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Name: "p", Namespace: "default", Operation: admissionv1.Create, UserInfo: authenticationv1.UserInfo{Username: "x"},
		Object: runtime.RawExtension{Raw: raw}})
	if res.Allowed() {
		t.Fatal("the webhook admits the pod: the broken policy is not the case under test")
	}

	if _, err := f.auditor.run(context.Background(), AuditSettings{MaxResults: 1000}); err != nil {
		t.Fatal(err)
	}
	var rep reportsv1alpha2.PolicyReport
	if err := f.client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: ReportName}, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Error != 1 || rep.Summary.Pass != 1 {
		t.Errorf("summary %+v, want the good policy's pass and the broken one's error", rep.Summary)
	}
	if len(rep.Results) != 1 || rep.Results[0].Policy != "broken" || rep.Results[0].Result != "error" {
		t.Errorf("results %+v, want one error of the broken policy", rep.Results)
	}
	if st := f.policy(t, "broken").Status.Audit; st == nil || st.Audited != 1 {
		t.Errorf("the broken policy's status.audit is %+v, want it to count the pod", st)
	}
}

// A namespace whose report cannot be written (being deleted, the API
// server refuses new content there) does not fail the audit: the other
// namespaces' reports, the statuses and the gauge are written, and a
// namespace known to be terminating is not written to at all.
func TestAuditNamespaceReportFailureDoesNotFailTheAudit(t *testing.T) {
	ns := liveNamespaces("live", "refusing", "terminating")
	ns["terminating"].DeletionTimestamp = &metav1.Time{Time: time.Now()}
	refused := func(obj client.Object) error {
		switch obj.GetNamespace() {
		case "refusing":
			return apierrors.NewForbidden(schema.GroupResource{Group: "wgpolicyk8s.io", Resource: "policyreports"}, obj.GetName(),
				errors.New("unable to create new content in namespace refusing because it is being terminated"))
		case "terminating":
			t.Errorf("the report of terminating namespace is written")
		}
		return nil
	}
	funcs := interceptor.Funcs{
		Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := refused(obj); err != nil {
				return err
			}
			return cl.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if err := refused(obj); err != nil {
				return err
			}
			return cl.Update(ctx, obj, opts...)
		},
	}
	pods := []*unstructured.Unstructured{auditPod("live"), auditPod("refusing"), auditPod("terminating")}
	f := newAuditFixture(t, ns, []*admissionv1alpha1.ValidationPolicy{podsPolicy("p", "false")}, pods, funcs)

	if _, err := f.auditor.run(context.Background(), AuditSettings{MaxResults: 1000}); err != nil {
		t.Fatalf("the audit failed: %v", err)
	}
	var rep reportsv1alpha2.PolicyReport
	if err := f.client.Get(context.Background(), client.ObjectKey{Namespace: "live", Name: ReportName}, &rep); err != nil {
		t.Fatalf("the live namespace's report: %v", err)
	}
	if rep.Summary.Fail != 1 {
		t.Errorf("the live namespace's summary %+v, want its pod's failure", rep.Summary)
	}
	if st := f.policy(t, "p").Status.Audit; st == nil || st.Violations != 3 {
		t.Errorf("status.audit %+v, want the three pods' violations", st)
	}
	if got := testutil.ToFloat64(f.auditor.violations.WithLabelValues("p")); got != 3 {
		t.Errorf("portcullis_background_audit_violations{policy=\"p\"} = %v, want 3", got)
	}
}

// An exception that expires stops exempting without a new exceptions
// version: the audit's fingerprint changes at that instant, so the
// violation it hid is audited once changes settle, not at the interval.
func TestAuditExceptionExpiryIsAChange(t *testing.T) {
	// The audit's own engine reads the wall clock: the exception expires
	// soon after the first run.
	expiry := time.Now().Add(time.Second)
	now := time.Now()
	f := newAuditFixture(t, liveNamespaces("default"), []*admissionv1alpha1.ValidationPolicy{podsPolicy("p", "false")},
		[]*unstructured.Unstructured{auditPod("default")}, interceptor.Funcs{})
	x, errs := engine.CompileException(&admissionv1alpha1.PolicyException{ObjectMeta: metav1.ObjectMeta{Name: "x"},
		Spec: admissionv1alpha1.PolicyExceptionSpec{Reason: "until the migration", ExpiresAt: &metav1.Time{Time: expiry},
			Policies: []admissionv1alpha1.PolicyReference{{Kind: engine.KindValidationPolicy, Name: "p"}}}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	f.pair.Exceptions.Set("x", x)
	a := f.auditor
	a.now = func() time.Time { return now }
	a.deps.ParamChanges = func() uint64 { return 0 }

	violations := func() int32 {
		t.Helper()
		if _, err := a.run(context.Background(), AuditSettings{MaxResults: 1000}); err != nil {
			t.Fatal(err)
		}
		st := f.policy(t, "p").Status.Audit
		if st == nil {
			t.Fatal("no status.audit")
		}
		return st.Violations
	}
	if v := violations(); v != 0 {
		t.Fatalf("%d violations while the exception serves, want 0", v)
	}
	before := a.fingerprint()
	now = expiry.Add(-time.Second)
	if a.fingerprint() != before {
		t.Error("the fingerprint changes before the exception expires")
	}
	now = expiry
	if a.fingerprint() == before {
		t.Fatal("the exception expired and the fingerprint did not change: the audit waits for the interval")
	}
	time.Sleep(time.Until(expiry))
	if v := violations(); v != 1 {
		t.Errorf("%d violations once the exception expired, want 1", v)
	}
}
