package webhookconfig

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
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
// whole; Drift names it until then. An unchanged configuration is left
// alone, defaults and all, so reconciling does not loop.
func TestEditedConfigurationIsReplacedWhole(t *testing.T) {
	c := fake.NewClientBuilder().Build()
	off := false
	r := admissionReconciler(c, &off)
	ctx := context.Background()
	if _, err := r.Reconcile(ctx, reconcileKey); err != nil {
		t.Fatal(err)
	}
	if drift, err := r.Drift(ctx); err != nil || len(drift) > 0 {
		t.Fatalf("Drift after reconcile = %v, %v; want none", drift, err)
	}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "v"}, &v); err != nil {
		t.Fatal(err)
	}
	rendered := v.DeepCopy()

	// As the API server stores it: its defaults set. Still as rendered.
	v.Webhooks[0].ObjectSelector = &metav1.LabelSelector{}
	v.Webhooks[0].ClientConfig.Service.Port = nil
	if err := c.Update(ctx, &v); err != nil {
		t.Fatal(err)
	}
	rv := v.ResourceVersion
	if _, err := r.Reconcile(ctx, reconcileKey); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "v"}, &v); err != nil || v.ResourceVersion != rv {
		t.Fatalf("an unedited configuration was written again (resourceVersion %s, was %s): %v", v.ResourceVersion, rv, err)
	}

	v.Webhooks[0].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"never": "set"}}
	v.Webhooks[0].MatchConditions = append(v.Webhooks[0].MatchConditions, admissionregistrationv1.MatchCondition{Name: "bypass", Expression: "false"})
	if err := c.Update(ctx, &v); err != nil {
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
	if !same(&v, rendered) || len(v.Webhooks[0].ObjectSelector.MatchLabels) > 0 || len(v.Webhooks[0].MatchConditions) != len(rendered.Webhooks[0].MatchConditions) {
		t.Fatalf("the edit survived: objectSelector %v, matchConditions %v", v.Webhooks[0].ObjectSelector, v.Webhooks[0].MatchConditions)
	}
	if drift, err := r.Drift(ctx); err != nil || len(drift) > 0 {
		t.Fatalf("Drift after the restore = %v, %v; want none", drift, err)
	}
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
