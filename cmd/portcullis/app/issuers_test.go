package app

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
)

// The issuer is read from the API server's discovery document once it is
// served, and said to be unknown until then, with reads spaced by retry;
// the issuers the operator was told come with it, and alone before it.
func TestServiceAccountIssuers(t *testing.T) {
	var served atomic.Bool
	var reads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != discoveryPath {
			http.NotFound(w, r)
			return
		}
		reads.Add(1)
		if !served.Load() {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"issuer":"https://kubernetes.default.svc","jwks_uri":"https://x/openid/v1/jwks"}`))
	}))
	defer srv.Close()
	s := &serviceAccountIssuers{cfg: &rest.Config{Host: srv.URL}, log: logr.Discard(), retry: time.Hour,
		configured: []string{"https://old-issuer.example"}}

	if got, known := s.Get(); known || len(got) != 1 || got[0] != "https://old-issuer.example" {
		t.Fatalf("before it is served: %v, %v, want the configured one, not known", got, known)
	}
	served.Store(true)
	if got, known := s.Get(); known || reads.Load() != 1 || len(got) != 1 {
		t.Fatalf("within retry: known %v after %d reads, want no second read", known, reads.Load())
	}
	s.retry = 0
	if got, known := s.Get(); !known || len(got) != 2 || got[0] != "https://kubernetes.default.svc" || got[1] != "https://old-issuer.example" {
		t.Fatalf("once served: %v, %v", got, known)
	}
	s.Get()
	if n := reads.Load(); n != 2 {
		t.Errorf("%d reads, want none once known", n)
	}
}
