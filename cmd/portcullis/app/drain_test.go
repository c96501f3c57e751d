package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// fakeServer stands for controller-runtime's webhook server: its mux, and
// a Start that runs until its context is done.
type fakeServer struct {
	mux     *http.ServeMux
	stopped chan time.Time
}

func (f *fakeServer) NeedLeaderElection() bool             { return false }
func (f *fakeServer) Register(path string, h http.Handler) { f.mux.Handle(path, h) }
func (f *fakeServer) StartedChecker() healthz.Checker      { return healthz.Ping }
func (f *fakeServer) WebhookMux() *http.ServeMux           { return f.mux }
func (f *fakeServer) Start(ctx context.Context) error {
	<-ctx.Done()
	f.stopped <- time.Now()
	return nil
}

func TestDrainingServer(t *testing.T) {
	shutdown := make(chan struct{})
	inner := &fakeServer{mux: http.NewServeMux(), stopped: make(chan time.Time, 1)}
	s := &drainingServer{Server: inner, shutdown: shutdown, drain: 300 * time.Millisecond}
	s.Register("/validate", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	call := func() http.Header {
		rec := httptest.NewRecorder()
		inner.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/validate", nil))
		return rec.Header()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()

	if h := call(); h.Get("Connection") != "" || s.Draining(nil) != nil {
		t.Fatalf("before shutdown: Connection %q, draining %v", h.Get("Connection"), s.Draining(nil))
	}
	close(shutdown)
	asked := time.Now()
	deadline := time.Now().Add(time.Second)
	for s.Draining(nil) == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s.Draining(nil) == nil {
		t.Fatal("not draining after shutdown")
	}
	if h := call(); h.Get("Connection") != "close" {
		t.Errorf("while draining: Connection %q, want close", h.Get("Connection"))
	}
	// The manager stops the webhook server at once; it goes on serving
	// until the drain is over.
	cancel()
	select {
	case at := <-inner.stopped:
		if at.Sub(asked) < 250*time.Millisecond {
			t.Errorf("the server stopped %v after shutdown, before the drain of %v", at.Sub(asked), s.drain)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not stop")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
