package authorization

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	authorizationv1 "k8s.io/api/authorization/v1"
	authorizationv1beta1 "k8s.io/api/authorization/v1beta1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"

	"github.com/portcullis-io/portcullis/internal/authz"
	"github.com/portcullis-io/portcullis/internal/decision"
	"github.com/portcullis-io/portcullis/internal/reviewhttp/reviewhttptest"
)

// fakeEngine answers from a function of the attributes, so these tests
// exercise the handler alone; internal/authz tests the engine.
type fakeEngine func(a authorizer.Attributes) authz.Result

func (f fakeEngine) Evaluate(_ context.Context, a authorizer.Attributes) authz.Result { return f(a) }

func engine() fakeEngine {
	return func(a authorizer.Attributes) authz.Result {
		switch {
		case a.GetUser().GetName() == "bob" && a.GetVerb() == "get" && a.GetResource() == "pods" && a.GetNamespace() == "caribou":
			return authz.Result{Decision: authorizer.DecisionAllow, Reason: `allowed by AccessPolicy "bob"`, Policy: "bob"}
		case a.GetUser().GetName() == "bob" && a.GetVerb() == "delete":
			return authz.Result{Decision: authorizer.DecisionDeny, Reason: `denied by AccessPolicy "no-delete"`, Policy: "no-delete"}
		case a.GetUser().GetName() == "err":
			return authz.Result{Decision: authorizer.DecisionDeny, Reason: `denied by AccessPolicy "broken"`, Policy: "broken",
				Errors: []authz.PolicyError{{Policy: "broken", Err: errors.New("no such key: name")}}}
		case !a.IsResourceRequest() && a.GetPath() == "/healthz" && contains(a.GetUser().GetGroups(), "ops"):
			return authz.Result{Decision: authorizer.DecisionAllow, Reason: `allowed by AccessPolicy "ops-health"`}
		case a.GetUser().GetName() == "panic":
			panic("boom")
		}
		return authz.Result{Decision: authorizer.DecisionNoOpinion}
	}
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func post(t *testing.T, w http.Handler, ct, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	rec := httptest.NewRecorder()
	w.ServeHTTP(rec, req)
	return rec
}

func TestServeHTTPAnswers(t *testing.T) {
	w := &Webhook{Engine: engine()}
	cases := []struct{ name, body, want string }{
		{"v1 allow",
			`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"bob","groups":["dev"],"resourceAttributes":{"namespace":"caribou","verb":"get","resource":"pods","version":"v1"}}}`,
			`{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","status":{"allowed":true,"reason":"allowed by AccessPolicy \"bob\""}}`},
		{"v1 deny sets denied, never allowed",
			`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"bob","resourceAttributes":{"verb":"delete","resource":"namespaces"}}}`,
			`{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","status":{"allowed":false,"denied":true,"reason":"denied by AccessPolicy \"no-delete\""}}`},
		{"no opinion sets neither",
			`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"alice","resourceAttributes":{"verb":"get","resource":"pods"}}}`,
			`{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","status":{"allowed":false}}`},
		{"evaluation error goes to evaluationError",
			`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"err","resourceAttributes":{"verb":"get","resource":"pods"}}}`,
			`{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","status":{"allowed":false,"denied":true,"reason":"denied by AccessPolicy \"broken\"","evaluationError":"AccessPolicy \"broken\": no such key: name"}}`},
		{"v1beta1 groups are read from \"group\" and answered in v1beta1",
			`{"apiVersion":"authorization.k8s.io/v1beta1","kind":"SubjectAccessReview","spec":{"user":"olga","group":["ops"],"nonResourceAttributes":{"path":"/healthz","verb":"get"}}}`,
			`{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1beta1","status":{"allowed":true,"reason":"allowed by AccessPolicy \"ops-health\""}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := post(t, w, "application/json", tc.body)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if got := strings.TrimSpace(rec.Body.String()); got != tc.want {
				t.Fatalf("answer\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

func TestServeHTTPRejectsBadRequests(t *testing.T) {
	w := &Webhook{Engine: engine()}
	cases := []struct {
		name, method, ct, body string
		code                   int
		msg                    string
	}{
		{"empty", http.MethodPost, "application/json", "", 400, "request body is empty"},
		{"malformed", http.MethodPost, "application/json", `{"kind":`, 400, "not a JSON object"},
		{"wrong kind", http.MethodPost, "application/json", `{"apiVersion":"authorization.k8s.io/v1","kind":"TokenReview"}`, 400, `kind "TokenReview" is not supported`},
		{"wrong version", http.MethodPost, "application/json", `{"apiVersion":"authorization.k8s.io/v2","kind":"SubjectAccessReview"}`, 400, `apiVersion "authorization.k8s.io/v2" is not supported`},
		{"no attributes", http.MethodPost, "application/json", `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"bob"}}`, 400, "neither resourceAttributes nor nonResourceAttributes"},
		{"both attributes", http.MethodPost, "application/json", `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"bob","resourceAttributes":{},"nonResourceAttributes":{}}}`, 400, "both resourceAttributes and nonResourceAttributes"},
		{"no user", http.MethodPost, "application/json", `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"resourceAttributes":{"verb":"get"}}}`, 400, "spec.user and spec.groups are both empty"},
		{"wrong types", http.MethodPost, "application/json", `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":7}}`, 400, "decoding SubjectAccessReview"},
		{"GET", http.MethodGet, "", "", 405, "method GET is not allowed"},
		{"yaml", http.MethodPost, "application/yaml", "{}", 415, "not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, Path, strings.NewReader(tc.body))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			rec := httptest.NewRecorder()
			w.ServeHTTP(rec, req)
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Fatalf("status %d %q, want %d %q", rec.Code, rec.Body, tc.code, tc.msg)
			}
		})
	}
}

func TestServeHTTPRecoversPanics(t *testing.T) {
	rec := post(t, &Webhook{Engine: engine()}, "application/json",
		`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"panic","resourceAttributes":{"verb":"get"}}}`)
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "internal error") {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

func TestToStatusNeverAllowsAndDenies(t *testing.T) {
	for _, d := range []authorizer.Decision{authorizer.DecisionAllow, authorizer.DecisionDeny, authorizer.DecisionNoOpinion} {
		for _, err := range []error{nil, errors.New("x")} {
			st := toStatus(d, "r", err)
			if st.Allowed && st.Denied {
				t.Fatalf("%v/%v: allowed and denied", d, err)
			}
			if (err != nil) != (st.EvaluationError != "") {
				t.Fatalf("%v/%v: evaluationError %q", d, err, st.EvaluationError)
			}
		}
	}
}

func TestAttributesFrom(t *testing.T) {
	a := AttributesFrom(&authorizationv1.SubjectAccessReviewSpec{
		User: "bob", UID: "1", Groups: []string{"g"}, Extra: map[string]authorizationv1.ExtraValue{"k": {"v"}},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "ns", Verb: "get", Group: "apps", Version: "v1", Resource: "deployments", Subresource: "scale", Name: "web"},
	})
	if !a.IsResourceRequest() || a.GetUser().GetName() != "bob" || a.GetUser().GetExtra()["k"][0] != "v" ||
		a.GetAPIGroup() != "apps" || a.GetSubresource() != "scale" || a.GetName() != "web" || a.GetNamespace() != "ns" {
		t.Fatalf("%+v", a)
	}
}

// FuzzDecodeBody: no input panics the decoder; what it accepts has a user
// or groups and exactly one kind of attributes.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"bob","resourceAttributes":{"verb":"get"}}}`,
		`{"apiVersion":"authorization.k8s.io/v1beta1","kind":"SubjectAccessReview","spec":{"group":["g"],"nonResourceAttributes":{"path":"/"}}}`,
		`{}`, `[]`, `null`, `{"kind":"SubjectAccessReview"}`,
	} {
		f.Add([]byte(s))
	}
	w := &Webhook{Engine: engine()}
	f.Fuzz(func(t *testing.T, body []byte) {
		rv, code, err := decodeBody(body)
		if err != nil {
			if code != http.StatusBadRequest {
				t.Fatalf("status %d", code)
			}
			return
		}
		s := rv.sar.Spec
		if (s.ResourceAttributes == nil) == (s.NonResourceAttributes == nil) || (s.User == "" && len(s.Groups) == 0) {
			t.Fatalf("accepted %s", body)
		}
		if s.User != "panic" {
			_ = w.Review(context.Background(), &rv.sar)
		}
	})
}

// TestConditionsSeeSelectors: a condition reads the review as sent, so the
// label selector of a list request reaches it.
func TestConditionsSeeSelectors(t *testing.T) {
	e := authz.NewEngine(nil, nil)
	r := authz.NewRegistry(e)
	p, errs := authz.Compile(authorizationcel.NewDefaultCompiler(), &authzv1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "team-lists"},
		Spec: authzv1alpha1.AccessPolicySpec{
			Effect:   authzv1alpha1.EffectAllow,
			Subjects: []authzv1alpha1.Subject{{Kind: authzv1alpha1.SubjectUser, Name: "bob"}},
			Rules:    []authzv1alpha1.Rule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}},
			Conditions: []authzv1alpha1.Condition{{
				Expression: "has(request.resourceAttributes.labelSelector) && request.resourceAttributes.labelSelector.rawSelector == 'team=caribou'",
			}},
		},
	})
	if len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	r.Set("team-lists", p)
	r.MarkReady()
	w := &Webhook{Engine: e}
	for selector, want := range map[string]bool{"team=caribou": true, "team=other": false} {
		body := `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"bob","resourceAttributes":{"verb":"list","resource":"pods","version":"v1","labelSelector":{"rawSelector":"` + selector + `"}}}}`
		rec := post(t, w, "application/json", body)
		if got := strings.Contains(rec.Body.String(), `"allowed":true`); got != want {
			t.Errorf("selector %s: allowed=%v, want %v: %s", selector, got, want, rec.Body)
		}
	}
}

// A v1beta1 review keeps every field of the request, selectors included:
// the engine's answer may depend on them.
func TestFromV1beta1KeepsEveryField(t *testing.T) {
	in := authorizationv1beta1.SubjectAccessReview{Spec: authorizationv1beta1.SubjectAccessReviewSpec{
		User: "alice", UID: "1", Groups: []string{"g"}, Extra: map[string]authorizationv1beta1.ExtraValue{"k": {"v"}},
		ResourceAttributes: &authorizationv1beta1.ResourceAttributes{
			Namespace: "prod", Verb: "list", Group: "", Version: "v1", Resource: "secrets", Subresource: "", Name: "",
			FieldSelector: &authorizationv1.FieldSelectorAttributes{RawSelector: "metadata.name=other"},
			LabelSelector: &authorizationv1.LabelSelectorAttributes{RawSelector: "app=web"},
		},
	}}
	want := authorizationv1.SubjectAccessReviewSpec{
		User: "alice", UID: "1", Groups: []string{"g"}, Extra: map[string]authorizationv1.ExtraValue{"k": {"v"}},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: "prod", Verb: "list", Version: "v1", Resource: "secrets",
			FieldSelector: &authorizationv1.FieldSelectorAttributes{RawSelector: "metadata.name=other"},
			LabelSelector: &authorizationv1.LabelSelectorAttributes{RawSelector: "app=web"},
		},
	}
	if got := fromV1beta1(&in).Spec; !equality.Semantic.DeepEqual(got, want) {
		t.Fatalf("fromV1beta1:\n got %+v\nwant %+v", got.ResourceAttributes, want.ResourceAttributes)
	}
	// The JSON of the two versions' specs is the same apart from groups:
	// a field added upstream to one and not copied shows here.
	b1, _ := json.Marshal(in.Spec)
	b2, _ := json.Marshal(want)
	if strings.Replace(string(b1), `"group":["g"]`, `"groups":["g"]`, 1) != string(b2) {
		t.Errorf("v1beta1 spec %s\n     v1 spec %s", b1, b2)
	}
}

// A review's selectors reach the engine as the API server's own
// SubjectAccessReview endpoint reads them: raw or as requirements, and
// what the engine writes for its CEL conditions reads back the same.
func TestAttributesFromKeepsSelectors(t *testing.T) {
	ra := func(fs *authorizationv1.FieldSelectorAttributes, ls *authorizationv1.LabelSelectorAttributes) *authorizationv1.SubjectAccessReviewSpec {
		return &authorizationv1.SubjectAccessReviewSpec{User: "alice", ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: "list", Resource: "secrets", FieldSelector: fs, LabelSelector: ls}}
	}
	a := AttributesFrom(ra(&authorizationv1.FieldSelectorAttributes{RawSelector: "metadata.namespace=dev,metadata.name!=x"}, &authorizationv1.LabelSelectorAttributes{RawSelector: "app in (web)"}))
	fs, err := a.GetFieldSelector()
	if err != nil || len(fs) != 2 || fs[0].Field != "metadata.name" && fs[1].Field != "metadata.name" {
		t.Fatalf("raw field selector: %v, %v", fs, err)
	}
	if ls, err := a.GetLabelSelector(); err != nil || len(ls) != 1 || ls[0].Key() != "app" {
		t.Fatalf("raw label selector: %v, %v", ls, err)
	}

	// What the engine builds for CEL conditions reads back to the same
	// requirements.
	back := AttributesFrom(&authz.SARFromAttributes(a).Spec)
	fs2, err := back.GetFieldSelector()
	if err != nil || fmt.Sprint(fs2) != fmt.Sprint(fs) {
		t.Errorf("field selector round trip: %v (%v), want %v", fs2, err, fs)
	}

	// An operator the API server does not support is an error, and the
	// rest is kept: a Deny then covers the request.
	bad := AttributesFrom(ra(&authorizationv1.FieldSelectorAttributes{Requirements: []metav1.FieldSelectorRequirement{
		{Key: "metadata.namespace", Operator: metav1.FieldSelectorOpIn, Values: []string{"dev"}},
		{Key: "metadata.name", Operator: metav1.FieldSelectorOpExists},
	}}, nil))
	if fs, err := bad.GetFieldSelector(); err == nil || len(fs) != 1 || fs[0].Value != "dev" {
		t.Errorf("requirements with an unsupported operator: %v, %v", fs, err)
	}
}

// BenchmarkLoopback is /authorize as the API server calls it, over
// loopback TLS on a kept-alive connection, with the real engine holding
// one AccessPolicy and the decision log and metrics on, next to a no-op
// handler that answers a constant, interleaved request by request.
func BenchmarkLoopback(b *testing.B) {
	cases := handlerCases(b) // the no-op first
	reviewhttptest.Loopback(b, cases[0], cases[1:])
}

// BenchmarkInProcess is BenchmarkLoopback's handlers in process.
func BenchmarkInProcess(b *testing.B) {
	reviewhttptest.InProcess(b, handlerCases(b))
}

func handlerCases(b *testing.B) []reviewhttptest.Case {
	body := `{"kind":"SubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"resourceAttributes":{"namespace":"caribou","verb":"create","version":"v1","resource":"configmaps"},"user":"bob","groups":["developers","system:authenticated"],"uid":"1001"},"status":{"allowed":false}}`
	e := authz.NewEngine(nil, nil)
	r := authz.NewRegistry(e)
	p, errs := authz.Compile(authorizationcel.NewDefaultCompiler(), &authzv1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bob-configmaps"},
		Spec: authzv1alpha1.AccessPolicySpec{Effect: authzv1alpha1.EffectAllow,
			Subjects: []authzv1alpha1.Subject{{Kind: authzv1alpha1.SubjectUser, Name: "bob"}},
			Rules:    []authzv1alpha1.Rule{{Namespaces: []string{"caribou"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}}}},
	})
	if len(errs) > 0 {
		b.Fatal(errs.ToAggregate())
	}
	r.Set(p.Name, p)
	r.MarkReady()
	w := &Webhook{Engine: e, Recorder: reviewhttptest.Recorder(b)}
	return []reviewhttptest.Case{
		{Name: "noop", Handler: reviewhttptest.NoOp(`{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","status":{"allowed":true,"reason":"allowed"}}`), Path: Path, Body: body, OK: func([]byte) bool { return true }},
		{Name: "handler", Handler: w, Path: Path, Body: body, OK: func(a []byte) bool { return strings.Contains(string(a), `"allowed":true`) }},
	}
}

// A review as large as the API server can make one (a request line of
// 540 KB whose field selector is "<", which JSON writes in six bytes) is
// decided; one larger than any it sends is denied, not refused with an
// error that the API server's failurePolicy (NoOpinion: RBAC alone) would
// turn into an answer with no Deny policy in it.
func TestLargeReviews(t *testing.T) {
	var logged strings.Builder
	recorder, err := decision.NewRecorder(funcr.New(func(_, args string) { logged.WriteString(args + "\n") }, funcr.Options{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &Webhook{Engine: engine(), Recorder: recorder}
	serve := func(body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		w.ServeHTTP(rec, req)
		return rec
	}
	sar := authorizationv1.SubjectAccessReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "authorization.k8s.io/v1", Kind: "SubjectAccessReview"},
		Spec: authorizationv1.SubjectAccessReviewSpec{User: "bob", ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: "delete", Resource: "secrets", Namespace: "prod",
			FieldSelector: &authorizationv1.FieldSelectorAttributes{Requirements: []metav1.FieldSelectorRequirement{
				{Key: "metadata.name", Operator: metav1.FieldSelectorOpNotIn, Values: []string{strings.Repeat("<", 180_000)}}}},
		}},
	}
	body, err := json.Marshal(sar)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) <= 1<<20 {
		t.Fatalf("the review is %d bytes, want it over 1 MiB", len(body))
	}
	if rec := serve(body); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"denied":true`) || !strings.Contains(rec.Body.String(), "no-delete") {
		t.Errorf("a %d-byte review: %d %.200s, want the Deny policy's answer", len(body), rec.Code, rec.Body)
	}

	sar.Spec.ResourceAttributes.FieldSelector.Requirements[0].Values[0] = strings.Repeat("a", MaxRequestBodyBytes)
	if body, err = json.Marshal(sar); err != nil {
		t.Fatal(err)
	}
	rec := serve(body)
	var out authorizationv1.SubjectAccessReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); rec.Code != 200 || err != nil || !out.Status.Denied || out.Status.Allowed || out.APIVersion != "authorization.k8s.io/v1" {
		t.Errorf("a review over the cap: %d %.300s, want a denial", rec.Code, rec.Body)
	}
	// Denied like any other request: in the decision log.
	if lines := strings.Split(strings.TrimSpace(logged.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[1], `"decision"="deny"`) || !strings.Contains(lines[1], "larger than any") {
		t.Errorf("decision log %q: want the oversized review's denial as its second line", logged.String())
	}
}
