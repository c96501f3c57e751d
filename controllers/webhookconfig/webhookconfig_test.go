package webhookconfig

import (
	"encoding/json"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
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
