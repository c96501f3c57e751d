package app

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// DefaultShutdownDrain is how long the webhook server keeps serving after
// the operator is asked to stop.
const DefaultShutdownDrain = 5 * time.Second

// drainingServer is the webhook server, stopped gracefully for the API
// server's kept-alive connections: from the moment the operator is asked
// to stop (shutdown closes), every answer carries Connection: close, so
// the API server opens its next connection to another replica (the
// Service no longer routes new ones here) instead of reusing one this
// replica is about to close, which would fail that request (an EOF the
// API server does not retry). The server itself stops no sooner than
// drain after shutdown; connections left idle that long are closed then.
type drainingServer struct {
	webhook.Server
	shutdown <-chan struct{}
	drain    time.Duration
	draining atomic.Bool
}

// Register implements webhook.Server.
func (s *drainingServer) Register(path string, h http.Handler) {
	s.Server.Register(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	}))
}

// Start implements webhook.Server: the server runs until drain after
// shutdown, and at least until the manager stops it.
func (s *drainingServer) Start(ctx context.Context) error {
	inner, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		select {
		case <-s.shutdown:
		case <-ctx.Done():
		case <-inner.Done():
			return
		}
		s.draining.Store(true)
		began := time.Now()
		select {
		case <-ctx.Done():
		case <-inner.Done():
			return
		}
		select {
		case <-time.After(s.drain - time.Since(began)):
		case <-inner.Done():
		}
		stop()
	}()
	return s.Server.Start(inner)
}

// Draining is a readiness check that fails once the server drains.
func (s *drainingServer) Draining(*http.Request) error {
	if s.draining.Load() {
		return errDraining
	}
	return nil
}

type drainingError struct{}

func (drainingError) Error() string { return "shutting down: draining the webhook connections" }

var errDraining error = drainingError{}
