package authentication

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apiserver/pkg/authentication/user"

	"github.com/portcullis-io/portcullis/internal/authn"
	"github.com/portcullis-io/portcullis/internal/reviewhttp/reviewhttptest"
)

// testToken is a StaticToken of the test engine.
const testToken = "0123456789abcdef0123456789abcdef"

func newTestWebhook(t testing.TB) *Webhook {
	t.Helper()
	e := authn.NewEngine(func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) })
	r := authn.NewRegistry(e)
	r.SetStatic("bob", &authn.StaticEntry{
		Name: "bob", Digest: authn.DigestOf(testToken),
		User: &user.DefaultInfo{Name: "bob", UID: "1001", Groups: []string{"developers"}, Extra: map[string][]string{"team": {"caribou"}}},
	})
	r.SetStatic("old", &authn.StaticEntry{
		Name: "old", Digest: authn.DigestOf("expired-token-expired-token"),
		User:      &user.DefaultInfo{Name: "old"},
		ExpiresAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	})
	r.MarkReady()
	return &Webhook{Engine: e}
}

func post(t testing.TB, h http.Handler, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestServeHTTPAnswers(t *testing.T) {
	w := newTestWebhook(t)
	cases := []struct {
		name, body string
		// want is the exact JSON answer (golden).
		want string
	}{
		{
			name: "v1 static token",
			body: `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"` + testToken + `","audiences":["https://kubernetes.default.svc"]}}`,
			want: `{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{},"spec":{},"status":{"authenticated":true,"user":{"username":"bob","uid":"1001","groups":["developers"],"extra":{"team":["caribou"]}}}}`,
		},
		{
			name: "v1beta1 is answered in v1beta1",
			body: `{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"` + testToken + `"}}`,
			want: `{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1beta1","metadata":{},"spec":{},"status":{"authenticated":true,"user":{"username":"bob","uid":"1001","groups":["developers"],"extra":{"team":["caribou"]}}}}`,
		},
		{
			name: "unknown token: unauthenticated, no error, no user",
			body: `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"not-a-token-we-know"}}`,
			want: `{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{},"spec":{},"status":{"user":{}}}`,
		},
		{
			name: "expired token looks exactly like an unknown one",
			body: `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"expired-token-expired-token"}}`,
			want: `{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","metadata":{},"spec":{},"status":{"user":{}}}`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := post(t, w, "application/json", tc.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if got := strings.TrimSpace(rec.Body.String()); got != tc.want {
				t.Fatalf("answer\n got: %s\nwant: %s", got, tc.want)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
		})
	}
}

func TestServeHTTPRejectsBadRequests(t *testing.T) {
	w := newTestWebhook(t)
	big := `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"` + strings.Repeat("a", MaxRequestBodyBytes) + `"}}`
	cases := []struct {
		name, method, contentType, body string
		code                            int
		msg                             string
	}{
		{"empty body", http.MethodPost, "application/json", "", 400, "request body is empty"},
		{"whitespace body", http.MethodPost, "application/json", "  \n", 400, "request body is empty"},
		{"malformed JSON", http.MethodPost, "application/json", `{"apiVersion":`, 400, "not a JSON object"},
		{"JSON array", http.MethodPost, "application/json", `[1,2]`, 400, "not a JSON object"},
		{"wrong kind", http.MethodPost, "application/json", `{"apiVersion":"authentication.k8s.io/v1","kind":"SubjectAccessReview"}`, 400, `kind "SubjectAccessReview" is not supported`},
		{"missing kind", http.MethodPost, "application/json", `{"apiVersion":"authentication.k8s.io/v1","spec":{"token":"x"}}`, 400, `kind "" is not supported`},
		{"wrong apiVersion", http.MethodPost, "application/json", `{"apiVersion":"authentication.k8s.io/v2","kind":"TokenReview","spec":{"token":"x"}}`, 400, `apiVersion "authentication.k8s.io/v2" is not supported`},
		{"empty token", http.MethodPost, "application/json", `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":""}}`, 400, "spec.token is empty"},
		{"token of the wrong type", http.MethodPost, "application/json", `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":42}}`, 400, "decoding TokenReview"},
		{"body over the cap", http.MethodPost, "application/json", big, 400, "larger than 1048576 bytes"},
		{"GET", http.MethodGet, "", "", 405, "method GET is not allowed"},
		{"text/plain", http.MethodPost, "text/plain", `{}`, 415, `content type "text/plain" is not supported`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, Path, strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			rec := httptest.NewRecorder()
			w.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tc.msg) {
				t.Fatalf("message %q does not say %q", rec.Body, tc.msg)
			}
		})
	}
}

// panicEngine shows that a panic while deciding becomes a 500, not a crash.
func TestServeHTTPRecoversPanics(t *testing.T) {
	w := &Webhook{Engine: authn.NewEngine(nil), Observed: func() { panic("boom") }}
	rec := post(t, w, "application/json", `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"abc"}}`)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "internal error") {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

func TestNotReadyIsUnauthenticated(t *testing.T) {
	w := &Webhook{Engine: authn.NewEngine(nil)}
	st := w.Review(context.Background(), authenticationv1.TokenReviewSpec{Token: testToken})
	if st.Authenticated || st.Error != "" {
		t.Fatalf("not-ready answer: %+v", st)
	}
}

func TestToStatus(t *testing.T) {
	w := newTestWebhook(t)
	st := w.Review(context.Background(), authenticationv1.TokenReviewSpec{Token: testToken, Audiences: []string{"a", "b"}})
	b, _ := json.Marshal(st)
	// A static token names no audiences, whatever the review asks for: the
	// API server then accepts it for its own implicit audiences only.
	want := `{"authenticated":true,"user":{"username":"bob","uid":"1001","groups":["developers"],"extra":{"team":["caribou"]}}}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	// The answer must not share memory with the snapshot's user.
	st.User.Groups[0] = "mutated"
	again := w.Review(context.Background(), authenticationv1.TokenReviewSpec{Token: testToken})
	if again.User.Groups[0] != "developers" {
		t.Fatal("answer aliases the snapshot")
	}
}

// FuzzDecodeBody: no input makes the decoder panic, and anything it accepts
// is a TokenReview with a token.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"abc","audiences":["x"]}}`,
		`{"apiVersion":"authentication.k8s.io/v1beta1","kind":"TokenReview","spec":{"token":"abc"}}`,
		`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":null}}`,
		`{"kind":"TokenReview"}`, `null`, `[]`, `{`, ``, `"str"`,
	} {
		f.Add([]byte(s))
	}
	w := newTestWebhook(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rv, code, err := decodeBody(body)
		if err != nil {
			if code != http.StatusBadRequest {
				t.Fatalf("decode error with status %d", code)
			}
			return
		}
		if rv.spec.Token == "" {
			t.Fatal("accepted a review without a token")
		}
		_ = w.Review(context.Background(), rv.spec)
	})
}

func BenchmarkServeHTTPStaticToken(b *testing.B) {
	w := newTestWebhook(b)
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"` + testToken + `"}}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		w.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

// BenchmarkLoopback is /authenticate as the API server calls it, over
// loopback TLS on a kept-alive connection, with the decision log and
// metrics on, interleaved request by request with a no-op handler that
// answers a constant.
func BenchmarkLoopback(b *testing.B) {
	cases := handlerCases(b) // the no-op first
	reviewhttptest.Loopback(b, cases[0], cases[1:])
}

// BenchmarkInProcess is BenchmarkLoopback's handlers in process.
func BenchmarkInProcess(b *testing.B) {
	reviewhttptest.InProcess(b, handlerCases(b))
}

func handlerCases(b *testing.B) []reviewhttptest.Case {
	body := `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","metadata":{"creationTimestamp":null},"spec":{"token":"` + testToken + `","audiences":["https://kubernetes.default.svc"]},"status":{"user":{}}}`
	w := newTestWebhook(b)
	w.Recorder = reviewhttptest.Recorder(b)
	return []reviewhttptest.Case{
		{Name: "noop", Handler: reviewhttptest.NoOp(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,"user":{"username":"bob","uid":"1001","groups":["developers"]}}}`), Path: Path, Body: body, OK: func([]byte) bool { return true }},
		{Name: "handler", Handler: w, Path: Path, Body: body, OK: func(a []byte) bool { return strings.Contains(string(a), `"authenticated":true`) }},
	}
}
