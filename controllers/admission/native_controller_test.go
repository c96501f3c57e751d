package admission

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	engine "github.com/portcullis-io/portcullis/internal/admission"
)

// handOver is a native reconciler over a fake API server, with one
// ValidationPolicy that refuses ConfigMaps without an app label, a clock
// the test moves, and the engine the webhook decides with.
type handOver struct {
	t      *testing.T
	r      *nativeReconciler
	c      client.Client
	engine *engine.ValidationEngine
	now    time.Time
	native bool
}

const (
	handOverGrace   = 3 * time.Second
	validatingHooks = "portcullis-validating"
)

func newHandOver(t *testing.T, leader bool) *handOver {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, admissionv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	p := &admissionv1alpha1.ValidationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "needs-app", UID: types.UID("0b6e1c2a-1111-4a5b-8c9d-000000000001"), Generation: 1},
		Spec: admissionv1alpha1.ValidationPolicySpec{
			Match: admissionv1alpha1.Match{Resources: []admissionv1alpha1.ResourceRule{{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"},
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}}},
			Action:      admissionv1alpha1.ActionDeny,
			Validations: []admissionv1alpha1.Validation{{Expression: "has(object.metadata.labels) && 'app' in object.metadata.labels", Message: "label app"}},
		},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(p).WithStatusSubresource(p).WithReturnManagedFields().Build()
	compiler, err := engine.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	compiled, errs := engine.CompileValidationPolicy(compiler, p)
	if len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	ve := engine.NewValidationEngine(engine.Namespaces{})
	vr := engine.NewValidationRegistry(ve)
	vr.Set(p.Name, compiled)
	vr.MarkReady()
	me := engine.NewMutationEngine(engine.Namespaces{})
	mr := engine.NewMutationRegistry(me)
	mr.MarkReady()
	h := &handOver{t: t, c: c, engine: ve, now: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC), native: true}
	h.r = &nativeReconciler{
		client: c, reader: c, mutations: mr, validations: vr, exceptions: engine.NewExceptionRegistry(me, ve),
		ready: func() bool { return true },
		settings: func(context.Context) (NativeSettings, error) {
			return NativeSettings{Native: h.native, ValidatingWebhook: validatingHooks, MutatingWebhook: "portcullis-mutating"}, nil
		},
		servesVAP: true, servesMAP: true, grace: handOverGrace,
		now: func() time.Time { return h.now }, changed: func() {},
	}
	h.r.elected.Store(leader)
	return h
}

// handedOver is a leader's handOver whose policy the API server holds.
func handedOver(t *testing.T) *handOver {
	t.Helper()
	h := newHandOver(t, true)
	h.reconcile(0)
	h.reconcile(100 * time.Millisecond)
	h.reconcile(handOverGrace)
	h.expect("handed over", false, true, admissionv1alpha1.ExecutionNative, admissionv1alpha1.ReasonGenerated)
	return h
}

// reconcile runs the reconciler at the test's clock, after advancing it.
func (h *handOver) reconcile(after time.Duration) reconcile.Result {
	h.t.Helper()
	h.now = h.now.Add(after)
	res, err := h.r.Reconcile(context.Background(), nativeKey)
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

// webhookRefuses reports whether the webhook's engine refuses a ConfigMap
// without labels: it does while it serves the policy.
func (h *handOver) webhookRefuses() bool {
	h.t.Helper()
	res := h.engine.Validate(context.Background(), &admissionv1.AdmissionRequest{
		UID: "u", Operation: admissionv1.Create, Name: "cm", Namespace: "default",
		Kind:     metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"},
		Resource: metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"},
		Object:   runtime.RawExtension{Raw: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","namespace":"default"}}`)},
	})
	if res.NotReady || res.Err() != nil {
		h.t.Fatalf("the webhook could not decide: %v", res.Err())
	}
	return !res.Allowed()
}

func (h *handOver) generated() (*admissionregistrationv1.ValidatingAdmissionPolicy, bool) {
	h.t.Helper()
	var vap admissionregistrationv1.ValidatingAdmissionPolicy
	err := h.c.Get(context.Background(), client.ObjectKey{Name: "needs-app.validate.portcullis.io"}, &vap)
	if client.IgnoreNotFound(err) != nil {
		h.t.Fatal(err)
	}
	return &vap, err == nil
}

func (h *handOver) execution() admissionv1alpha1.ExecutionStatus {
	h.t.Helper()
	var p admissionv1alpha1.ValidationPolicy
	if err := h.c.Get(context.Background(), client.ObjectKey{Name: "needs-app"}, &p); err != nil {
		h.t.Fatal(err)
	}
	if p.Status.Execution == nil {
		return admissionv1alpha1.ExecutionStatus{}
	}
	return *p.Status.Execution
}

// coverConfigMaps creates the validating webhook configuration with a rule
// for the policy's ConfigMaps.
func (h *handOver) coverConfigMaps() {
	h.t.Helper()
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: validatingHooks},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "validate.portcullis.io", Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
		}}}}}
	if err := h.c.Create(context.Background(), cfg); err != nil {
		h.t.Fatal(err)
	}
}

// step is one expectation after a reconcile.
func (h *handOver) expect(step string, refuses bool, generated bool, mode admissionv1alpha1.ExecutionMode, reason string) {
	h.t.Helper()
	if got := h.webhookRefuses(); got != refuses {
		h.t.Errorf("%s: the webhook refuses %v, want %v", step, got, refuses)
	}
	if _, got := h.generated(); got != generated {
		h.t.Errorf("%s: generated ValidatingAdmissionPolicy exists %v, want %v", step, got, generated)
	}
	if st := h.execution(); st.Mode != mode || st.Reason != reason {
		h.t.Errorf("%s: status.execution %s/%s (%s), want %s/%s", step, st.Mode, st.Reason, st.Message, mode, reason)
	}
}

// The webhook lets a policy go only after the API server has held its
// generated form, unedited, for the grace; an edit gives it back to the
// webhook at once; a take-back keeps the generated objects until the
// grace has passed and the webhook configuration covers the policy. At no
// step does neither serve the policy.
func TestNativeHandOverOrder(t *testing.T) {
	h := newHandOver(t, true)

	h.reconcile(0)
	h.expect("generated, not yet seen", true, true, admissionv1alpha1.ExecutionWebhook, admissionv1alpha1.ReasonHandingOver)

	res := h.reconcile(100 * time.Millisecond)
	h.expect("seen, within the grace", true, true, admissionv1alpha1.ExecutionWebhook, admissionv1alpha1.ReasonHandingOver)
	if res.RequeueAfter <= 0 || res.RequeueAfter > handOverGrace {
		t.Errorf("requeue after %v, want within the grace", res.RequeueAfter)
	}

	h.reconcile(handOverGrace - 200*time.Millisecond)
	h.expect("just before the grace", true, true, admissionv1alpha1.ExecutionWebhook, admissionv1alpha1.ReasonHandingOver)

	h.reconcile(200 * time.Millisecond)
	h.expect("after the grace", false, true, admissionv1alpha1.ExecutionNative, admissionv1alpha1.ReasonGenerated)

	// Someone loosens the generated policy: the webhook serves the policy
	// again in the same reconcile that restores the object, and lets it go
	// only after a new grace.
	vap, _ := h.generated()
	vap.Spec.Validations[0].Expression = "true"
	if err := h.c.Update(context.Background(), vap, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	h.reconcile(time.Second)
	if !h.webhookRefuses() {
		t.Error("edited: the webhook let the policy go while its generated form was loosened")
	}
	if vap, _ := h.generated(); vap.Spec.Validations[0].Expression == "true" {
		t.Error("edited: the generated policy was not restored")
	}
	h.reconcile(time.Second)
	h.expect("restored, within a new grace", true, true, admissionv1alpha1.ExecutionWebhook, admissionv1alpha1.ReasonHandingOver)
	h.reconcile(handOverGrace)
	h.expect("restored, after the grace", false, true, admissionv1alpha1.ExecutionNative, admissionv1alpha1.ReasonGenerated)

	// Taken back: the webhook serves at once; the generated objects stay
	// while the webhook configuration does not cover the policy's rules,
	// and for the grace after it does (the API server loads it then), however
	// long it took to.
	h.native = false
	h.reconcile(time.Second)
	h.expect("taken back", true, true, admissionv1alpha1.ExecutionWebhook, admissionv1alpha1.ReasonRequested)
	h.reconcile(2 * handOverGrace)
	h.expect("taken back, the configuration not covering", true, true, admissionv1alpha1.ExecutionWebhook, admissionv1alpha1.ReasonRequested)
	h.coverConfigMaps()
	h.reconcile(time.Second)
	h.expect("taken back, covered late, within the grace", true, true, admissionv1alpha1.ExecutionWebhook, admissionv1alpha1.ReasonRequested)
	h.reconcile(handOverGrace)
	h.expect("taken back, covered, after the grace", true, false, admissionv1alpha1.ExecutionWebhook, admissionv1alpha1.ReasonRequested)
}

// A replica that does not lead writes nothing: it keeps serving the
// policy until it sees the generated objects the leader makes.
func TestNativeFollowerServesUntilItSeesTheGeneratedObjects(t *testing.T) {
	h := newHandOver(t, false)
	h.reconcile(0)
	h.reconcile(2 * handOverGrace)
	if _, ok := h.generated(); ok {
		t.Fatal("a follower created the generated policy")
	}
	if !h.webhookRefuses() {
		t.Fatal("a follower let the policy go with no generated form in the API server")
	}
	if st := h.execution(); st.Mode != "" {
		t.Errorf("a follower wrote status.execution %+v", st)
	}
}

// A take-back keeps the generated objects for the grace even when the
// webhook configuration already covers the policy: the API server may not
// have loaded the configuration yet.
func TestNativeTakeBackKeepsObjectsForTheGrace(t *testing.T) {
	h := handedOver(t)
	h.coverConfigMaps()
	h.native = false
	h.reconcile(time.Second)
	h.expect("taken back, covered, grace begun", true, true, admissionv1alpha1.ExecutionWebhook, admissionv1alpha1.ReasonRequested)
	h.reconcile(handOverGrace - 500*time.Millisecond)
	h.expect("taken back, covered, within the grace", true, true, admissionv1alpha1.ExecutionWebhook, admissionv1alpha1.ReasonRequested)
	h.reconcile(time.Second)
	h.expect("taken back, covered, after the grace", true, false, admissionv1alpha1.ExecutionWebhook, admissionv1alpha1.ReasonRequested)
}

// A policy one of whose expressions does not compile is served by the
// webhook (that validation an error whenever evaluated) and has no native
// form; its status says Invalid and names the expression's field.
func TestNativeBrokenExpressionIsInvalid(t *testing.T) {
	h := newHandOver(t, true)
	var p admissionv1alpha1.ValidationPolicy
	if err := h.c.Get(context.Background(), client.ObjectKey{Name: "needs-app"}, &p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Validations = append(p.Spec.Validations, admissionv1alpha1.Validation{Expression: "object.metadata.name.nope(", Message: "broken"})
	compiler, err := engine.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	compiled, errs := engine.CompileValidationPolicy(compiler, &p)
	if len(errs) == 0 || compiled.Err() != nil {
		t.Fatalf("want only an expression error: %v, %v", errs, compiled.Err())
	}
	h.r.validations.Set(p.Name, compiled)
	h.reconcile(0)
	st := h.execution()
	if st.Mode != admissionv1alpha1.ExecutionWebhook || st.Reason != admissionv1alpha1.ReasonInvalid || !strings.Contains(st.Message, "spec.validations[1].expression") {
		t.Errorf("status.execution %s/%s (%s), want Webhook/Invalid naming spec.validations[1].expression", st.Mode, st.Reason, st.Message)
	}
	if _, generated := h.generated(); generated {
		t.Error("a ValidatingAdmissionPolicy was generated")
	}
}

// A generated policy another manager server-side applies, changing a
// field, is restored and handed back to the API server: the other
// manager's claim on the fields it set goes with its edit.
func TestNativeAppliedByAnotherManagerIsHandedBack(t *testing.T) {
	h := handedOver(t)
	vap, _ := h.generated()
	applied := &admissionregistrationv1.ValidatingAdmissionPolicy{}
	applied.APIVersion, applied.Kind = "admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"
	applied.Name = vap.Name
	applied.Spec = *vap.Spec.DeepCopy()
	applied.Spec.Validations[0].Expression = "true"
	if err := h.c.Patch(context.Background(), applied, client.Apply, client.FieldOwner("gitops"), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	h.reconcile(time.Second)
	if got, _ := h.generated(); got.Spec.Validations[0].Expression == "true" || !h.webhookRefuses() {
		t.Fatalf("applied: restored %v, the webhook serving %v", got.Spec.Validations[0].Expression != "true", h.webhookRefuses())
	}
	for i := 0; i < 3; i++ {
		h.reconcile(handOverGrace)
	}
	h.expect("restored and held for the grace", false, true, admissionv1alpha1.ExecutionNative, admissionv1alpha1.ReasonGenerated)
}
