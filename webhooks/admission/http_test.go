package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/gjson"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	engine "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/admission/admissiontest"
	"github.com/portcullis-io/portcullis/internal/decision"
	"github.com/portcullis-io/portcullis/internal/reviewhttp/reviewhttptest"
)

func compiler(t testing.TB) *engine.Compiler {
	t.Helper()
	c, err := engine.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var podRule = []admissionv1alpha1.ResourceRule{{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}}

// namespaces are the namespaces the reviews are in, as the engine's
// lister finds them in a cluster.
var namespaces = engine.Namespaces{
	"default": {ObjectMeta: metav1.ObjectMeta{Name: "default", Labels: map[string]string{corev1.LabelMetadataName: "default"}}},
	"caribou": {ObjectMeta: metav1.ObjectMeta{Name: "caribou", Labels: map[string]string{corev1.LabelMetadataName: "caribou"}}},
}

func validator(t testing.TB, ready bool, policies ...*admissionv1alpha1.ValidationPolicy) *Validator {
	t.Helper()
	e := engine.NewValidationEngine(namespaces)
	r := engine.NewValidationRegistry(e)
	for _, p := range policies {
		c, errs := engine.CompileValidationPolicy(compiler(t), p)
		if len(errs) > 0 {
			t.Fatal(errs.ToAggregate())
		}
		r.Set(p.Name, c)
	}
	if ready {
		r.MarkReady()
	}
	return &Validator{Engine: e}
}

func mutator(t testing.TB, policies ...*admissionv1alpha1.MutationPolicy) *Mutator {
	t.Helper()
	e := engine.NewMutationEngine(namespaces)
	r := engine.NewMutationRegistry(e)
	for _, p := range policies {
		c, errs := engine.CompileMutationPolicy(compiler(t), p)
		if len(errs) > 0 {
			t.Fatal(errs.ToAggregate())
		}
		r.Set(p.Name, c)
	}
	r.MarkReady()
	return &Mutator{Engine: e}
}

func review(op, object string) string {
	return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},"name":"p","namespace":"` +
		`default","operation":"` + op + `","userInfo":{"username":"bob"},"object":` + object + `,"dryRun":false}}`
}

const pod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"c","image":"x","securityContext":{"privileged":true}}]}}`

func post(t *testing.T, h http.Handler, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func answer(t *testing.T, rec *httptest.ResponseRecorder) *admissionv1.AdmissionResponse {
	t.Helper()
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var rv admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &rv); err != nil || rv.Response == nil {
		t.Fatalf("answer %s: %v", rec.Body, err)
	}
	if rv.Response.UID != "u-1" || rv.APIVersion != "admission.k8s.io/v1" || rv.Kind != "AdmissionReview" {
		t.Fatalf("answer envelope: %s", rec.Body)
	}
	return rv.Response
}

func vpolicy(name string, action admissionv1alpha1.Action, expr, msg string) *admissionv1alpha1.ValidationPolicy {
	return &admissionv1alpha1.ValidationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1},
		Spec: admissionv1alpha1.ValidationPolicySpec{
			Match:       admissionv1alpha1.Match{Resources: podRule},
			Action:      action,
			Validations: []admissionv1alpha1.Validation{{Expression: expr, Message: msg}},
		},
	}
}

const noPrivileged = admissiontest.NoPrivileged

func TestValidateAnswers(t *testing.T) {
	v := validator(t, true,
		vpolicy("deny-privileged", admissionv1alpha1.ActionDeny, noPrivileged, "privileged containers are not allowed"),
		vpolicy("warn-privileged", admissionv1alpha1.ActionWarn, noPrivileged, "privileged is discouraged"),
		vpolicy("audit-privileged", admissionv1alpha1.ActionAudit, noPrivileged, "privileged seen"),
	)
	r := answer(t, post(t, v, review("CREATE", pod)))
	if r.Allowed || r.Result == nil || r.Result.Code != 403 || !strings.Contains(r.Result.Message, "privileged containers are not allowed") {
		t.Fatalf("deny: %+v", r)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "privileged is discouraged") {
		t.Fatalf("warnings: %v", r.Warnings)
	}
	if !strings.Contains(r.AuditAnnotations[engine.AuditKeyValidationFailure], "audit-privileged") {
		t.Fatalf("audit annotations: %v", r.AuditAnnotations)
	}
	ok := answer(t, post(t, v, review("CREATE", strings.Replace(pod, `,"securityContext":{"privileged":true}`, ``, 1))))
	if !ok.Allowed || len(ok.Warnings) != 0 || ok.AuditAnnotations != nil {
		t.Fatalf("clean pod: %+v", ok)
	}
}

// Before the first sync the call fails (HTTP 500) so the configuration's
// failurePolicy applies. A policy that cannot be evaluated is handled by
// its own failure policy: under Fail the request is denied naming it,
// under Ignore the policy is skipped; either way the call is answered.
func TestValidateFailsTheCallWhenItCannotDecide(t *testing.T) {
	if rec := post(t, validator(t, false), review("CREATE", pod)); rec.Code != 500 || !strings.Contains(rec.Body.String(), "still loading") {
		t.Fatalf("not ready: %d %s", rec.Code, rec.Body)
	}
	failing := vpolicy("broken", admissionv1alpha1.ActionDeny, "object.spec.nodeName == 'x'", "")
	r := answer(t, post(t, validator(t, true, failing), review("CREATE", pod)))
	// 422 Invalid, as the API server answers for a ValidatingAdmissionPolicy
	// whose first denied decision is an evaluation error.
	if r.Allowed || r.Result == nil || r.Result.Code != 422 || r.Result.Reason != metav1.StatusReasonInvalid || !strings.Contains(r.Result.Message, `"broken"`) || !strings.Contains(r.Result.Message, "failurePolicy Fail") {
		t.Fatalf("evaluation error under Fail: %+v", r)
	}
	// The first denied decision decides: a failed validation before the
	// error is 403 Forbidden, the reason of the policy's native form.
	first := vpolicy("a-fails", admissionv1alpha1.ActionDeny, noPrivileged, "no")
	if r := answer(t, post(t, validator(t, true, first, failing), review("CREATE", pod))); r.Allowed || r.Result.Code != 403 || r.Result.Reason != metav1.StatusReasonForbidden {
		t.Fatalf("failed validation, then an evaluation error: %+v", r)
	}
	both := failing.DeepCopy()
	both.Spec.Validations = append(both.Spec.Validations, admissionv1alpha1.Validation{Expression: noPrivileged})
	if r := answer(t, post(t, validator(t, true, both), review("CREATE", pod))); r.Allowed || r.Result.Code != 422 || len(strings.Split(r.Result.Message, ";")) != 2 {
		t.Fatalf("an evaluation error, then a failed validation: %+v", r)
	}
	ignored := failing.DeepCopy()
	ignored.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	if r := answer(t, post(t, validator(t, true, ignored), review("CREATE", pod))); !r.Allowed {
		t.Fatalf("evaluation error under Ignore: %+v", r)
	}
}

// One MutationPolicy that cannot be applied does not stop the others:
// under Ignore it is skipped with a warning and the others' patch is sent;
// under Fail the request is rejected naming it.
func TestMutateOneFailingPolicy(t *testing.T) {
	good := &admissionv1alpha1.MutationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "labels", Generation: 1},
		Spec: admissionv1alpha1.MutationPolicySpec{
			Match:     admissionv1alpha1.Match{Resources: podRule},
			Mutations: []admissionv1alpha1.Mutation{{SetLabels: map[string]string{"team": "caribou"}}},
		},
	}
	bad := &admissionv1alpha1.MutationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "remove-missing", Generation: 1},
		Spec: admissionv1alpha1.MutationPolicySpec{
			Match:         admissionv1alpha1.Match{Resources: podRule},
			Mutations:     []admissionv1alpha1.Mutation{{JSONPatch: &admissionv1alpha1.JSONPatch{Patch: `[{"op":"remove","path":"/spec/hostname"}]`}}},
			FailurePolicy: ptr.To(admissionregistrationv1.Ignore),
		},
	}
	m := mutator(t, good, bad)
	reg := prometheus.NewRegistry()
	rec, err := decision.NewRecorder(logr.Discard(), reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Recorder = rec
	r := answer(t, post(t, m, review("CREATE", pod)))
	if !r.Allowed || !strings.Contains(string(r.Patch), "caribou") || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], `"remove-missing" was skipped`) {
		t.Fatalf("one failing policy under Ignore: allowed %v, patch %s, warnings %v", r.Allowed, r.Patch, r.Warnings)
	}
	// And counted, by policy and failure policy.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := false
	for _, mf := range mfs {
		if mf.GetName() != "portcullis_policy_errors_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			counted = counted || (labels["policy"] == "MutationPolicy/remove-missing" && labels["failure_policy"] == "Ignore" && mt.GetCounter().GetValue() == 1)
		}
	}
	if !counted {
		t.Errorf("the skipped policy is not counted in portcullis_policy_errors_total: %v", mfs)
	}
	bad.Spec.FailurePolicy = nil // Fail, the default
	r = answer(t, post(t, mutator(t, good, bad), review("CREATE", pod)))
	// 403 with reason Invalid, as the API server rejects a
	// MutatingAdmissionPolicy that could not be applied.
	if r.Allowed || r.Result == nil || r.Result.Code != 403 || r.Result.Reason != metav1.StatusReasonInvalid || !strings.Contains(r.Result.Message, `"remove-missing" could not be applied (failurePolicy Fail)`) {
		t.Fatalf("one failing policy under Fail: %+v", r)
	}
}

func TestMutateAnswersOnePatch(t *testing.T) {
	m := mutator(t, &admissionv1alpha1.MutationPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "labels", Generation: 1},
		Spec: admissionv1alpha1.MutationPolicySpec{
			Match:     admissionv1alpha1.Match{Resources: podRule},
			Mutations: []admissionv1alpha1.Mutation{{SetLabels: map[string]string{"team": "caribou"}}},
		},
	})
	r := answer(t, post(t, m, review("CREATE", pod)))
	if !r.Allowed || r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
		t.Fatalf("mutate: %+v", r)
	}
	if got := string(r.Patch); got != `[{"op":"add","path":"/metadata/labels","value":{"team":"caribou"}}]` {
		t.Fatalf("patch %s", got)
	}
	// Idempotent: the mutated pod needs no patch.
	again := answer(t, post(t, m, review("CREATE", strings.Replace(pod, `"namespace":"default"}`, `"namespace":"default","labels":{"team":"caribou"}}`, 1))))
	if again.Patch != nil {
		t.Fatalf("second pass patched again: %s", again.Patch)
	}
}

func TestRejectsBadRequests(t *testing.T) {
	v := validator(t, true)
	// Over the cap, a review whose head names its uid is rejected (the
	// call is answered, so no failurePolicy skips a policy); one that does
	// not is malformed.
	big := review("CREATE", `{"data":"`+strings.Repeat("a", MaxRequestBodyBytes)+`"}`)
	bigNoUID := `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"object":{"data":"` + strings.Repeat("a", MaxRequestBodyBytes) + `"}}}`
	for name, c := range map[string]struct {
		method, ct, body string
		code             int
		msg              string
	}{
		"empty":                {http.MethodPost, "application/json", "", 400, "request body is empty"},
		"malformed":            {http.MethodPost, "application/json", `{"kind":`, 400, "not a JSON object"},
		"no request":           {http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, 400, "has no request"},
		"no uid":               {http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}`, 400, "request.uid is empty"},
		"v1beta1":              {http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}`, 400, "use admission.k8s.io/v1"},
		"wrong kind":           {http.MethodPost, "application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"TokenReview"}`, 400, `kind "TokenReview"`},
		"over the cap":         {http.MethodPost, "application/json", big, 200, `"allowed":false,"status":{"metadata":{},"status":"Failure","message":"portcullis: the AdmissionReview is larger than 7340032 bytes`},
		"over the cap, no uid": {http.MethodPost, "application/json", bigNoUID, 400, "larger than"},
		"GET":                  {http.MethodGet, "", "", 405, "not allowed"},
		"yaml":                 {http.MethodPost, "application/yaml", "{}", 415, "not supported"},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(c.method, "/validate", strings.NewReader(c.body))
			if c.ct != "" {
				req.Header.Set("Content-Type", c.ct)
			}
			rec := httptest.NewRecorder()
			v.ServeHTTP(rec, req)
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.msg) {
				t.Fatalf("%d %q, want %d %q", rec.Code, rec.Body, c.code, c.msg)
			}
		})
	}
}

type panicky struct{}

func (panicky) review(context.Context, *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	panic("boom")
}

func TestRecoversPanics(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader(review("CREATE", pod)))
	serve(rec, req, panicky{})
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "internal error") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

// FuzzDecodeBody: no input panics the decoder, and what it accepts has a
// request with a UID and an operation.
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(review("CREATE", pod)))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"DELETE","oldObject":{}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}`))
	f.Add([]byte(`[]`))
	v := validator(f, true, vpolicy("deny-privileged", admissionv1alpha1.ActionDeny, noPrivileged, "no"))
	f.Fuzz(func(t *testing.T, body []byte) {
		rv, code, err := decodeBody(body)
		if err != nil {
			if code != http.StatusBadRequest {
				t.Fatalf("status %d", code)
			}
			return
		}
		if rv.Request == nil || rv.Request.UID == "" || rv.Request.Operation == "" {
			t.Fatalf("accepted %s", body)
		}
		_, _ = v.review(context.Background(), rv.Request)
	})
}

// BenchmarkServeHTTPValidate100Policies is the budget point of
// internal/admission's BenchmarkValidate100Policies through the handler:
// an in-process POST /validate (no network, no TLS) of the same pod, 100
// ValidationPolicies that all match it and allow it; the body read and
// decoded, the answer encoded; no decision log.
func BenchmarkServeHTTPValidate100Policies(b *testing.B) {
	ps := make([]*admissionv1alpha1.ValidationPolicy, 100)
	for i := range ps {
		check := admissiontest.PodChecks[i%len(admissiontest.PodChecks)]
		ps[i] = vpolicy(fmt.Sprintf("policy-%03d", i), admissionv1alpha1.ActionDeny, check, "check failed")
	}
	v := validator(b, true, ps...)
	pod := admissiontest.Pod()
	pod["metadata"].(map[string]any)["namespace"] = "default" // review's
	object, err := json.Marshal(pod)
	if err != nil {
		b.Fatal(err)
	}
	body := review("CREATE", string(object))
	serve := func() *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, ValidatePath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		v.ServeHTTP(rec, req)
		return rec
	}
	if rec := serve(); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"allowed":true`) {
		b.Fatalf("%d %s", rec.Code, rec.Body)
	}
	b.ReportAllocs()
	lat := make(admissiontest.Latencies, 0, 4096)
	for b.Loop() {
		lat.Time(func() {
			if rec := serve(); rec.Code != 200 {
				b.Fatal(rec.Code)
			}
		})
	}
	lat.Report(b)
}

// callDeadline is the API server's timeout (its "timeout" query
// parameter) less a margin, and no deadline without one.
func TestCallDeadline(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/validate?timeout=3s", nil)
	ctx, cancel := callDeadline(r)
	defer cancel()
	dl, ok := ctx.Deadline()
	if left := time.Until(dl); !ok || left > 2700*time.Millisecond || left < 2*time.Second {
		t.Errorf("deadline in %v (set %v), want about 2.7s", time.Until(dl), ok)
	}
	ctx2, cancel2 := callDeadline(httptest.NewRequest(http.MethodPost, "/validate", nil))
	defer cancel2()
	if _, ok := ctx2.Deadline(); ok {
		t.Error("a deadline without a timeout parameter")
	}
}

// The API server's timeout bounds the evaluation: served with
// ?timeout=1s, policies whose CEL would run for seconds, each expression
// under the per-call limit and each policy under its budget so that only
// the deadline stops them, are answered within the second with their
// own error, which failurePolicy Fail makes a denial. CEL sees the
// deadline through the context the handler passes to the engine
// (ContextEval interrupts comprehensions when it is done).
func TestServeStopsAtTheCallDeadline(t *testing.T) {
	items := make([]string, 300)
	for i := range items {
		items[i] = strconv.Itoa(i)
	}
	object := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"c","image":"x"}],"items":[` + strings.Join(items, ",") + `]}}`
	// 90,000 comparisons: a fraction of a second, under the per-call
	// limit.
	const quadratic = "object.spec.items.all(x, object.spec.items.all(y, x == y || x != y))"
	slow := func(name string, n int) *admissionv1alpha1.ValidationPolicy {
		p := vpolicy(name, admissionv1alpha1.ActionDeny, quadratic, "never false")
		for len(p.Spec.Validations) < n {
			p.Spec.Validations = append(p.Spec.Validations, p.Spec.Validations[0])
		}
		return p
	}
	// What one expression costs in time here, without a deadline: the
	// policies below must take several times the API server's timeout.
	probe := validator(t, true, slow("probe", 1))
	start := time.Now()
	if r := answer(t, post(t, probe, review("CREATE", object))); !r.Allowed {
		t.Fatalf("the probe: %+v", r.Result)
	}
	const policies, validations = 3, 10 // 7e6 of a budget of 1e7 each
	unbounded := policies * validations * time.Since(start)
	if unbounded < 3*time.Second {
		t.Fatalf("all evaluations would take %v: not enough to outlast the deadline", unbounded)
	}
	v := validator(t, true, slow("slow-a", validations), slow("slow-b", validations), slow("slow-c", validations))
	req := httptest.NewRequest(http.MethodPost, ValidatePath+"?timeout=1s", strings.NewReader(review("CREATE", object)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	start = time.Now()
	v.ServeHTTP(rec, req)
	// The deadline's error below says the evaluation was cut; the time is
	// compared with what it would have taken (not with the timeout
	// itself, which a loaded or race-instrumented run may pass by a
	// little in stopping).
	took := time.Since(start)
	if took >= unbounded/2 {
		t.Errorf("answered in %v, where every evaluation takes %v: not stopped at the deadline", took, unbounded)
	}
	r := answer(t, rec)
	if r.Allowed || r.Result == nil || !strings.Contains(r.Result.Message, `ValidationPolicy "slow-a" denied request`) ||
		!strings.Contains(r.Result.Message, "could not be evaluated (failurePolicy Fail)") || !strings.Contains(r.Result.Message, "context deadline exceeded") {
		t.Fatalf("answer in %v: %+v", took, r.Result)
	}
}

// configMapReview is the review the API server sends for a token user's
// create of a ConfigMap.
const configMapReview = `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"7b9a4b1e-4c51-4e5a-9f0e-2a0f3c1d5e6f","kind":{"group":"","version":"v1","kind":"ConfigMap"},"resource":{"group":"","version":"v1","resource":"configmaps"},"requestKind":{"group":"","version":"v1","kind":"ConfigMap"},"requestResource":{"group":"","version":"v1","resource":"configmaps"},"name":"bench","namespace":"caribou","operation":"CREATE","userInfo":{"username":"bob","uid":"1001","groups":["developers","system:authenticated"],"extra":{"authentication.kubernetes.io/credential-id":["JTI=0123"]}},"object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"bench","namespace":"caribou","creationTimestamp":null,"labels":{"app":"bench"},"managedFields":[{"manager":"bench","operation":"Update","apiVersion":"v1","time":"2026-12-02T10:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:data":{".":{},"f:key":{}},"f:metadata":{"f:labels":{".":{},"f:app":{}}}}}]},"data":{"key":"value"}},"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"bench"}}}`

var configMapRule = []admissionv1alpha1.ResourceRule{{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}, Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}}

// BenchmarkLoopback is /mutate (one label) and /validate (one CEL check)
// as the API server calls them, over loopback TLS on a kept-alive
// connection, interleaved request by request with a no-op handler that
// answers a constant.
func BenchmarkLoopback(b *testing.B) {
	cases := handlerCases(b) // the no-op first
	reviewhttptest.Loopback(b, cases[0], cases[1:])
}

// BenchmarkInProcess is BenchmarkLoopback's handlers in process.
func BenchmarkInProcess(b *testing.B) {
	reviewhttptest.InProcess(b, handlerCases(b))
}

// handlerCases are the handlers BenchmarkLoopback and BenchmarkInProcess
// measure, each with the decision log and metrics on: a no-op that
// answers a constant; the floor of any handler that decodes the review
// as the issue asks (one typed decode, the object kept raw) and answers
// it, deciding nothing, so that what /mutate and /validate cost beyond it
// is the engines'; /mutate with one setLabels policy; /validate with one
// CEL check.
func handlerCases(b *testing.B) []reviewhttptest.Case {
	allowed := func(a []byte) bool { return strings.Contains(string(a), `"allowed":true`) }
	m := mutator(b, &admissionv1alpha1.MutationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "stamp"}, Spec: admissionv1alpha1.MutationPolicySpec{
		Match: admissionv1alpha1.Match{Resources: configMapRule}, Mutations: []admissionv1alpha1.Mutation{{SetLabels: map[string]string{"stamped": "yes"}}}}})
	m.Recorder = reviewhttptest.Recorder(b)
	v := validator(b, true, &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "has-app"}, Spec: admissionv1alpha1.ValidationPolicySpec{
		Match: admissionv1alpha1.Match{Resources: configMapRule}, Action: admissionv1alpha1.ActionDeny,
		Validations: []admissionv1alpha1.Validation{{Expression: "has(object.metadata.labels) && 'app' in object.metadata.labels", Message: "label app"}}}})
	v.Recorder = reviewhttptest.Recorder(b)
	return []reviewhttptest.Case{
		{Name: "noop", Handler: reviewhttptest.NoOp(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","response":{"uid":"7b9a4b1e-4c51-4e5a-9f0e-2a0f3c1d5e6f","allowed":true}}`), Path: ValidatePath, Body: configMapReview, OK: func([]byte) bool { return true }},
		{Name: "decode-only", Handler: decodeOnly{}, Path: ValidatePath, Body: configMapReview, OK: allowed},
		{Name: "mutate", Handler: m, Path: MutatePath, Body: configMapReview, OK: func(a []byte) bool { return strings.Contains(string(a), `"patch"`) }},
		{Name: "validate", Handler: v, Path: ValidatePath, Body: configMapReview, OK: allowed},
	}
}

// decodeOnly is serve with a reviewer that allows everything.
type decodeOnly struct{}

func (decodeOnly) ServeHTTP(rw http.ResponseWriter, r *http.Request) { serve(rw, r, decodeOnly{}) }

func (decodeOnly) review(context.Context, *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	return &admissionv1.AdmissionResponse{Allowed: true}, nil
}

// queryValue reads a parameter as url.ParseQuery and Get do.
func TestQueryValue(t *testing.T) {
	for _, raw := range []string{
		"", "timeout=10s", "a=1&timeout=3s", "timeout=1s&timeout=2s", "timeout", "timeout=", "&&timeout=4s&",
		"time%6Fut=5s", "timeout=6%73", "timeout=7s;x=1", "x=1;y=2&timeout=8s", "timeout=%zz&timeout=9s",
		"%zz=1&timeout=10s", "timeout=1+s", "timeouts=1s", "TIMEOUT=1s",
	} {
		q, _ := url.ParseQuery(raw)
		if got, want := queryValue(raw, "timeout"), q.Get("timeout"); got != want {
			t.Errorf("%q: %q, url.ParseQuery gives %q", raw, got, want)
		}
	}
}

// Every object and oldObject of a review decodeBody accepts is valid JSON
// by gjson's reading, which the engines then read without checking again
// (engine.WithDecodedJSON): the decoder refuses what encoding/json
// refuses, whose JSON is gjson's.
func FuzzDecodedObjectsAreValidJSON(f *testing.F) {
	for _, s := range []string{
		configMapReview,
		`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"x","operation":"DELETE","oldObject":{"a":[1,2.5e3,true,null,"s"]},"object":null}}`,
		`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"x","operation":"CREATE","object":{"a":"\ud800\u00e9\"\\\/\b\f\n\r\t","b":-0.0e-0,"c":[{},[]]},"Object":{"b":1E+2}}}`,
		"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\",\"request\":{\"uid\":\"x\",\"operation\":\"CREATE\",\"object\":{\"\xff\":\"\xfe\"}}}",
		`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"x","operation":"CREATE","object":{"a":01}}}`,
		`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"x","operation":"CREATE","object":"str","oldObject":12}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		review, _, err := decodeBody(body)
		if err != nil {
			return
		}
		for _, raw := range [][]byte{review.Request.Object.Raw, review.Request.OldObject.Raw, review.Request.Options.Raw} {
			if len(raw) > 0 && !gjson.ValidBytes(raw) {
				t.Fatalf("%q: decoded, and its raw %q is not valid JSON to gjson", body, raw)
			}
		}
	})
}
