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
