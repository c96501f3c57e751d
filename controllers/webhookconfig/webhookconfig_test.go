package webhookconfig

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func podRule() []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
	}}
}

func TestAdmissionDesired(t *testing.T) {
	a := Admission{
		MutatingName: "m", ValidatingName: "v", MutatePath: "/mutate", ValidatePath: "/validate",
		ExcludedNamespaces: []string{"kube-system", "portcullis-system"},
		ExcludedUsers:      []string{"system:serviceaccount:portcullis-system:portcullis-controller-manager"},
	}
	ep := Endpoint{ServiceNamespace: "portcullis-system", ServiceName: "portcullis-webhook", ServicePort: 443}
	if a.DesiredMutating(ep, []byte("CA"), nil) != nil || a.DesiredValidating(ep, []byte("CA"), nil) != nil {
		t.Fatal("no policy must mean no webhook")
	}
	m := a.DesiredMutating(ep, []byte("CA"), podRule())
	w := m.Webhooks[0]
	if *w.FailurePolicy != admissionregistrationv1.Ignore || *w.TimeoutSeconds != 3 ||
		*w.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy ||
		*w.SideEffects != admissionregistrationv1.SideEffectClassNone || w.AdmissionReviewVersions[0] != "v1" ||
		*w.ClientConfig.Service.Path != "/mutate" || string(w.ClientConfig.CABundle) != "CA" {
		t.Fatalf("mutating webhook: %+v", w)
	}
	v := a.DesiredValidating(Endpoint{URL: "https://127.0.0.1:9443"}, []byte("CA"), podRule())
	vw := v.Webhooks[0]
	if *vw.FailurePolicy != admissionregistrationv1.Fail || *vw.TimeoutSeconds != 5 || *vw.ClientConfig.URL != "https://127.0.0.1:9443/validate" {
		t.Fatalf("validating webhook: %+v", vw)
	}
	b, _ := json.Marshal(vw)
	for _, want := range []string{
		`"values":["kube-system","portcullis-system"]`, `"operator":"NotIn"`,
		`!(request.resource.group == 'portcullis.io' || request.resource.group.endsWith('.portcullis.io'))`,
		`!(request.userInfo.username in [\"system:serviceaccount:portcullis-system:portcullis-controller-manager\"])`,
		`"resources":["pods"]`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("validating webhook lacks %s:\n%s", want, b)
		}
	}
}

// Until the engines are ready, the admission configurations stay as they
// are: a new leader whose snapshot is still loading must not drop the
// rules of policies it has not loaded (the API server would stop calling
// the webhooks for them). Once ready, the rules are the snapshot's.
func TestAdmissionConfigurationsWaitForTheEngines(t *testing.T) {
	existing := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "v"}}
	c := fake.NewClientBuilder().WithObjects(existing).Build()
	ready := false
	r := &Reconciler{
		Client:   c,
		OwnKinds: OwnKinds{Name: "own", Path: "/own"},
		Admission: &Admission{
			MutatingName: "m", ValidatingName: "v", MutatePath: "/mutate", ValidatePath: "/validate",
			Rules: func() (m, v []admissionregistrationv1.RuleWithOperations) { return nil, nil },
			Ready: func() bool { return ready },
		},
		Endpoint: Endpoint{URL: "https://127.0.0.1:9443"},
		CABundle: func() ([]byte, error) { return []byte("ca"), nil },
	}
	ctx := context.Background()
	res, err := r.Reconcile(ctx, reconcileKey)
	if err != nil || res.RequeueAfter == 0 {
		t.Fatalf("not ready: %+v, %v; want a recheck", res, err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(existing), &admissionregistrationv1.ValidatingWebhookConfiguration{}); err != nil {
		t.Fatalf("the configuration was touched before the engines were ready: %v", err)
	}
	ready = true
	if _, err := r.Reconcile(ctx, reconcileKey); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(existing), &admissionregistrationv1.ValidatingWebhookConfiguration{}); !apierrors.IsNotFound(err) {
		t.Fatalf("ready with no policy: the configuration should be gone, got %v", err)
	}
}

// admissionReconciler keeps a validating configuration for pods over a
// fake API server; disabled turns the validating webhook off through the
// overrides, as the WebhookBundle does.
func admissionReconciler(c client.Client, disabled *bool) *Reconciler {
	return &Reconciler{
		Client:   c,
		OwnKinds: OwnKinds{Name: "own", Path: "/own"},
		Admission: &Admission{
			MutatingName: "m", ValidatingName: "v", MutatePath: "/mutate", ValidatePath: "/validate",
			ExcludedNamespaces: []string{"kube-system"},
			Rules:              func() (m, v []admissionregistrationv1.RuleWithOperations) { return nil, podRule() },
		},
		Endpoint: Endpoint{ServiceNamespace: "portcullis-system", ServiceName: "portcullis-webhook", ServicePort: 443},
		CABundle: func() ([]byte, error) { return []byte("ca"), nil },
		Overrides: func(_ context.Context, a *Admission, _ *Endpoint) error {
			a.ValidatingDisabled = *disabled
			return nil
		},
	}
}

// An edit that adds what the operator never sets (an objectSelector no
// object matches, a matchCondition that is always false) would keep every
// request from the webhook: it is undone, the configuration replaced
// whole, the operator left its one manager; Drift names it until then. A
// configuration the operator wrote last is left alone, so reconciling
// does not loop.
func TestEditedConfigurationIsReplacedWhole(t *testing.T) {
	c := fake.NewClientBuilder().WithReturnManagedFields().Build()
	off := false
	r := admissionReconciler(c, &off)
	ctx := context.Background()
	unchanged := func(when string) {
		t.Helper()
		var before, after admissionregistrationv1.ValidatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: "v"}, &before); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Reconcile(ctx, reconcileKey); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKey{Name: "v"}, &after); err != nil || after.ResourceVersion != before.ResourceVersion {
			t.Fatalf("%s: the configuration was written again (resourceVersion %s, was %s): %v", when, after.ResourceVersion, before.ResourceVersion, err)
		}
		if drift, err := r.Drift(ctx); err != nil || len(drift) > 0 {
			t.Fatalf("%s: Drift = %v, %v; want none", when, drift, err)
		}
	}
	if _, err := r.Reconcile(ctx, reconcileKey); err != nil {
		t.Fatal(err)
	}
	unchanged("created")
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "v"}, &v); err != nil {
		t.Fatal(err)
	}
	rendered := v.DeepCopy()
	if v.Annotations[HashAnnotation] == "" {
		t.Fatalf("no digest of the rendering: %v", v.Annotations)
	}

	v.Webhooks[0].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"never": "set"}}
	v.Webhooks[0].MatchConditions = append(v.Webhooks[0].MatchConditions, admissionregistrationv1.MatchCondition{Name: "bypass", Expression: "false"})
	v.Annotations["note"] = "theirs"
	if err := c.Update(ctx, &v, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	if drift, err := r.Drift(ctx); err != nil || len(drift) != 1 || !strings.Contains(drift[0], "ValidatingWebhookConfiguration v") {
		t.Fatalf("Drift after the edit = %v, %v; want v named", drift, err)
	}
	if _, err := r.Reconcile(ctx, reconcileKey); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "v"}, &v); err != nil {
		t.Fatal(err)
	}
	if !apiequality.Semantic.DeepEqual(v.Webhooks, rendered.Webhooks) {
		t.Fatalf("the edit survived: objectSelector %v, matchConditions %v", v.Webhooks[0].ObjectSelector, v.Webhooks[0].MatchConditions)
	}
	if v.Annotations["note"] != "theirs" {
		t.Errorf("another manager's annotation was dropped: %v", v.Annotations)
	}
	for _, mf := range v.ManagedFields {
		if mf.Manager != FieldOwner {
			t.Errorf("the editor still manages fields after the restore: %+v", v.ManagedFields)
		}
	}
	unchanged("restored")
}

// A webhook the bundle turns off has its configuration deleted, and that
// is as rendered: Drift does not want it, and names one left behind.
func TestDisabledWebhookIsNotWanted(t *testing.T) {
	c := fake.NewClientBuilder().Build()
	off := false
	r := admissionReconciler(c, &off)
	ctx := context.Background()
	if _, err := r.Reconcile(ctx, reconcileKey); err != nil {
		t.Fatal(err)
	}
	off = true
	if drift, err := r.Drift(ctx); err != nil || len(drift) != 1 || !strings.Contains(drift[0], "not wanted") {
		t.Fatalf("Drift with the webhook off and its configuration left = %v, %v", drift, err)
	}
	if _, err := r.Reconcile(ctx, reconcileKey); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "v"}, &admissionregistrationv1.ValidatingWebhookConfiguration{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the turned-off webhook's configuration is still there: %v", err)
	}
	if drift, err := r.Drift(ctx); err != nil || len(drift) > 0 {
		t.Fatalf("Drift with the webhook off = %v, %v; want none", drift, err)
	}
}
