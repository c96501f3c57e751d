package admission

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/decision"
)

// What a policy's message expression or error says of a Secret stays out
// of the decision log, which anyone who reads the operator's logs sees: a
// denial's reason, an Audit violation and a policy error are logged by
// policy name only. The author still gets the message in the answer. A
// ConfigMap's are logged as they are, so the test sees the log lines.
func TestSecretDataIsNotInTheDecisionLog(t *testing.T) {
	const data = "aHVudGVyMg=="
	rule := func(resource string) []admissionv1alpha1.ResourceRule {
		return []admissionv1alpha1.ResourceRule{{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{resource},
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}}
	}
	policy := func(name string, action admissionv1alpha1.Action, resource, expression string) *admissionv1alpha1.ValidationPolicy {
		return &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
			Spec: admissionv1alpha1.ValidationPolicySpec{Match: admissionv1alpha1.Match{Resources: rule(resource)}, Action: action,
				Validations: []admissionv1alpha1.Validation{{Expression: expression, MessageExpression: "'too short: ' + string(object.data.password)"}}}}
	}
	for _, kind := range []struct{ kind, resource, data string }{{"Secret", "secrets", data}, {"ConfigMap", "configmaps", "hunter2-" + data}} {
		t.Run(kind.kind, func(t *testing.T) {
			var logged strings.Builder
			rec, err := decision.NewRecorder(funcr.New(func(_, args string) { logged.WriteString(args + "\n") }, funcr.Options{}), nil)
			if err != nil {
				t.Fatal(err)
			}
			v := validator(t, true,
				policy("deny-short", admissionv1alpha1.ActionDeny, kind.resource, "string(object.data.password).size() >= 40"),
				policy("audit-short", admissionv1alpha1.ActionAudit, kind.resource, "string(object.data.password).size() >= 40"),
				// An error whose text carries the value: a string is no int.
				policy("broken", admissionv1alpha1.ActionAudit, kind.resource, "int(string(object.data.password)) > 0"))
			v.Recorder = rec
			body := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":%q},"resource":{"group":"","version":"v1","resource":%q},"name":"s","namespace":"default","operation":"CREATE","userInfo":{"username":"bob"},"object":{"apiVersion":"v1","kind":%q,"metadata":{"name":"s","namespace":"default"},"data":{"password":%q}},"dryRun":false}}`,
				kind.kind, kind.resource, kind.kind, kind.data)
			r := answer(t, post(t, v, body))
			if r.Allowed || r.Result == nil || !strings.Contains(r.Result.Message, kind.data) {
				t.Fatalf("answer %+v: want denied with the policy's message", r.Result)
			}
			line := logged.String()
			for _, want := range []string{"deny-short", "audit-short", "broken"} {
				if !strings.Contains(line, want) {
					t.Errorf("the decision log does not name %s: %s", want, line)
				}
			}
			if got := strings.Contains(line, kind.data); got != (kind.kind != "Secret") {
				t.Errorf("the %s's data in the decision log: %v: %s", kind.kind, got, line)
			}
		})
	}
}

// A review refused for its size is a decision like any other: in the
// decision log with its uid, for each handler.
func TestOversizedReviewIsRecorded(t *testing.T) {
	for _, phase := range []string{decision.PhaseValidate, decision.PhaseMutate} {
		var logged strings.Builder
		rec, err := decision.NewRecorder(funcr.New(func(_, args string) { logged.WriteString(args + "\n") }, funcr.Options{}), nil)
		if err != nil {
			t.Fatal(err)
		}
		v, m := validator(t, true), mutator(t)
		v.Recorder, m.Recorder = rec, rec
		h := map[string]http.Handler{decision.PhaseValidate: v, decision.PhaseMutate: m}[phase]
		r := answer(t, post(t, h, review("CREATE", `{"data":"`+strings.Repeat("a", MaxRequestBodyBytes)+`"}`)))
		if r.Allowed {
			t.Fatalf("%s: an oversized review allowed", phase)
		}
		line := logged.String()
		if !strings.Contains(line, `"phase"="`+phase+`"`) || !strings.Contains(line, `"decision"="denied"`) || !strings.Contains(line, string(r.UID)) {
			t.Errorf("%s: decision log %q, want the denial with uid %s", phase, line, r.UID)
		}
	}
}
