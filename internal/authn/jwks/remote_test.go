package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwksServer serves a JWKS document over TLS and counts requests.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64

	mu     sync.Mutex
	body   []byte
	status int
	// gate, when not nil, holds every request until it is closed.
	gate chan struct{}
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		body, status, gate := s.body, s.status, s.gate
		s.mu.Unlock()
		if gate != nil {
			<-gate
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	// Handshakes refused by a wrong CA are the point of some tests, not
	// noise for the test log.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *jwksServer) setGate(gate chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = gate
}

// caPEM is the PEM of the server's certificate, which httptest signs
// itself: it is its own CA.
func (s *jwksServer) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

// fakeClock is a settable Now for the refetch rate limit.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// otherCA is a self-signed CA that did not sign the test server.
func otherCA(t *testing.T) []byte {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "other CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newRemote(t *testing.T, s *jwksServer, clock *fakeClock, refresh time.Duration) *RemoteKeySet {
	t.Helper()
	r, err := NewRemote(t.Context(), RemoteOptions{
		URL:             s.URL + "/keys",
		CAPEM:           s.caPEM(),
		RefreshInterval: refresh,
		Now:             clock.Now,
	})
	if err != nil {
		t.Fatalf("NewRemote() error = %v", err)
	}
	return r
}

func TestNewRemote(t *testing.T) {
	rsaA, ecA := key("rsa-a"), key("ec-a")
	good := docOf(t, rsaA, ecA)

	// A plain-HTTP server the TLS one redirects to.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(good) }))
	t.Cleanup(plain.Close)
	redirect := httptest.NewTLSServer(http.RedirectHandler(plain.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	closed := httptest.NewTLSServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name string
		// status and body are what the test server answers.
		status int
		body   []byte
		// opts returns the options for the server s.
		opts    func(s *jwksServer) RemoteOptions
		wantErr string
	}{
		{name: "valid", status: 200, body: good},
		{name: "server error", status: 500, body: []byte("<html>oops</html>"), wantErr: "HTTP status 500 Internal Server Error"},
		{name: "not found", status: 404, body: good, wantErr: "HTTP status 404"},
		{name: "invalid document", status: 200, body: []byte(`{"keys": [`), wantErr: "key set is not valid JSON"},
		{name: "empty key set", status: 200, body: []byte(`{"keys": []}`), wantErr: "key set is empty"},
		{name: "private key", status: 200, body: doc(t, rsaA.jwk(), jose.JSONWebKey{Key: ecA.priv}), wantErr: "key 1: contains private key material"},
		{name: "too large", status: 200, body: append([]byte(`{"keys": []}`), make([]byte, MaxDocumentBytes)...), wantErr: "larger than 1048576 bytes"},
		{name: "wrong CA", status: 200, body: good, opts: func(s *jwksServer) RemoteOptions {
			return RemoteOptions{URL: s.URL, CAPEM: otherCA(t)}
		}, wantErr: "certificate signed by unknown authority"},
		{name: "system roots do not trust the test server", status: 200, body: good, opts: func(s *jwksServer) RemoteOptions {
			return RemoteOptions{URL: s.URL}
		}, wantErr: "x509"},
		{name: "CA without certificates", status: 200, body: good, opts: func(s *jwksServer) RemoteOptions {
			return RemoteOptions{URL: s.URL, CAPEM: []byte("not PEM")}
		}, wantErr: "certificateAuthority holds no PEM certificate"},
		{name: "http URL", status: 200, body: good, opts: func(*jwksServer) RemoteOptions {
			return RemoteOptions{URL: plain.URL}
		}, wantErr: "is not https"},
		{name: "credentials in URL", status: 200, body: good, opts: func(s *jwksServer) RemoteOptions {
			return RemoteOptions{URL: strings.Replace(s.URL, "https://", "https://user:secret@", 1), CAPEM: s.caPEM()}
		}, wantErr: "must not hold credentials"},
		{name: "no host", status: 200, body: good, opts: func(*jwksServer) RemoteOptions {
			return RemoteOptions{URL: "https:///keys"}
		}, wantErr: "has no host"},
		{name: "redirect to http", status: 200, body: good, opts: func(s *jwksServer) RemoteOptions {
			return RemoteOptions{URL: redirect.URL, CAPEM: s.caPEM()}
		}, wantErr: "not https"},
		{name: "server down", status: 200, body: good, opts: func(s *jwksServer) RemoteOptions {
			return RemoteOptions{URL: closedURL, CAPEM: s.caPEM()}
		}, wantErr: "connect"},
		{name: "Client and CAPEM", status: 200, body: good, opts: func(s *jwksServer) RemoteOptions {
			return RemoteOptions{URL: s.URL, CAPEM: s.caPEM(), Client: s.Client()}
		}, wantErr: "mutually exclusive"},
		{name: "Client", status: 200, body: good, opts: func(s *jwksServer) RemoteOptions {
			return RemoteOptions{URL: s.URL, Client: s.Client()}
		}},
		{name: "negative refresh interval", status: 200, body: good, opts: func(s *jwksServer) RemoteOptions {
			return RemoteOptions{URL: s.URL, CAPEM: s.caPEM(), RefreshInterval: -time.Second}
		}, wantErr: "RefreshInterval -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newJWKSServer(t, tt.body)
			s.serve(tt.status, tt.body)
			opts := RemoteOptions{URL: s.URL + "/keys", CAPEM: s.caPEM()}
			if tt.opts != nil {
				opts = tt.opts(s)
			}
			r, err := NewRemote(t.Context(), opts)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("NewRemote() = %d keys, want error containing %q", r.Len(), tt.wantErr)
				}
				t.Logf("error: %v", err)
				if !strings.HasPrefix(err.Error(), "jwks: ") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewRemote() error = %q, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewRemote() error = %v", err)
			}
			if r.Len() != 2 || r.LastError() != nil || r.LastFetch().IsZero() {
				t.Fatalf("Len() = %d, LastError() = %v, LastFetch() = %v", r.Len(), r.LastError(), r.LastFetch())
			}
			for _, k := range []testKey{rsaA, ecA} {
				if _, err := r.VerifySignature(t.Context(), k.token(t)); err != nil {
					t.Errorf("VerifySignature(%s) error = %v", k.alg, err)
				}
			}
		})
	}
}

func TestRemoteRotation(t *testing.T) {
	rsaA, ecB := key("rsa-a"), key("ec-b")
	s := newJWKSServer(t, docOf(t, rsaA))
	clock := newFakeClock()
	r := newRemote(t, s, clock, time.Hour)
	start := r.LastFetch()

	if _, err := r.VerifySignature(t.Context(), rsaA.token(t)); err != nil {
		t.Fatalf("old key: %v", err)
	}
	// The issuer rotates: the old key is gone, a new one signs.
	s.serve(http.StatusOK, docOf(t, ecB))
	newToken := ecB.token(t)

	// Right after a fetch the refetch is rate limited.
	_, err := r.VerifySignature(t.Context(), newToken)
	if !errors.Is(err, ErrUnknownKeyID) || !strings.Contains(err.Error(), "(refetch: last fetch too recent)") {
		t.Fatalf("within MinRefetchInterval: error = %v, want ErrUnknownKeyID, not refetched", err)
	}
	if got := s.requests.Load(); got != 1 {
		t.Fatalf("requests = %d, want 1", got)
	}

	clock.Advance(DefaultMinRefetchInterval)
	payload, err := r.VerifySignature(t.Context(), newToken)
	if err != nil || string(payload) != testClaims {
		t.Fatalf("after rotation: payload %q, error %v", payload, err)
	}
	if got := s.requests.Load(); got != 2 {
		t.Fatalf("requests = %d, want 2", got)
	}
	if !r.LastFetch().After(start) || r.Len() != 1 {
		t.Errorf("LastFetch() = %v (start %v), Len() = %d", r.LastFetch(), start, r.Len())
	}
	// The removed key no longer verifies, and the kid it names is unknown.
	if _, err := r.VerifySignature(t.Context(), rsaA.token(t)); !errors.Is(err, ErrUnknownKeyID) {
		t.Errorf("removed key: error = %v, want ErrUnknownKeyID", err)
	}
}

func TestRemoteRefetchRateLimit(t *testing.T) {
	rsaA := key("rsa-a")
	s := newJWKSServer(t, docOf(t, rsaA))
	clock := newFakeClock()
	r := newRemote(t, s, clock, time.Hour)
	unknown := sign(t, rsaA.priv, rsaA.alg, "unknown", testClaims)

	verifyMany := func(n int, token string) (failed int) {
		var wg sync.WaitGroup
		var failures atomic.Int64
		for range n {
			wg.Go(func() {
				if _, err := r.VerifySignature(t.Context(), token); err != nil {
					failures.Add(1)
				}
			})
		}
		wg.Wait()
		return int(failures.Load())
	}

	tests := []struct {
		name         string
		advance      time.Duration
		wantRequests int64
	}{
		{name: "right after the first fetch", advance: 0, wantRequests: 1},
		{name: "interval passed: one refetch for all", advance: DefaultMinRefetchInterval, wantRequests: 2},
		{name: "within the interval again", advance: DefaultMinRefetchInterval - time.Nanosecond, wantRequests: 2},
		{name: "next interval", advance: time.Nanosecond, wantRequests: 3},
	}
	for _, tt := range tests {
		clock.Advance(tt.advance)
		if failed := verifyMany(50, unknown); failed != 50 {
			t.Fatalf("%s: %d of 50 unknown-kid tokens failed, want all", tt.name, failed)
		}
		if got := s.requests.Load(); got != tt.wantRequests {
			t.Fatalf("%s: requests = %d, want %d", tt.name, got, tt.wantRequests)
		}
	}
	if r.LastError() != nil {
		t.Errorf("LastError() = %v", r.LastError())
	}
}

func TestRemoteRefetchFailure(t *testing.T) {
	rsaA, ec384 := key("rsa-a"), key("ec384")
	s := newJWKSServer(t, docOf(t, rsaA))
	clock := newFakeClock()
	r := newRemote(t, s, clock, time.Hour)
	start := r.LastFetch()
	s.serve(http.StatusServiceUnavailable, nil)

	tests := []struct {
		name    string
		token   string
		wantErr error
	}{
		{name: "unknown kid", token: sign(t, rsaA.priv, rsaA.alg, "unknown", testClaims), wantErr: ErrUnknownKeyID},
		{name: "no kid, no key for the alg", token: sign(t, ec384.priv, ec384.alg, "", testClaims), wantErr: ErrNoMatchingKey},
	}
	for i, tt := range tests {
		clock.Advance(DefaultMinRefetchInterval)
		_, err := r.VerifySignature(t.Context(), tt.token)
		if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "(refetch: jwks: fetching key set from") {
			t.Errorf("%s: error = %v, want %v with the refetch failure", tt.name, err, tt.wantErr)
		}
		if got, want := s.requests.Load(), int64(i+2); got != want {
			t.Errorf("%s: requests = %d, want %d", tt.name, got, want)
		}
	}
	if err := r.LastError(); err == nil || !strings.Contains(err.Error(), "HTTP status 503") {
		t.Errorf("LastError() = %v, want the 503", err)
	}
	if !r.LastFetch().Equal(start) || r.Len() != 1 {
		t.Errorf("LastFetch() = %v (want %v), Len() = %d: the last good set must stay", r.LastFetch(), start, r.Len())
	}
	if _, err := r.VerifySignature(t.Context(), rsaA.token(t)); err != nil {
		t.Errorf("known key after a failed refetch: %v", err)
	}
}

// TestRemoteRefetchShared checks that tokens arriving while a refetch runs
// wait for it and then verify, with one request to the issuer.
func TestRemoteRefetchShared(t *testing.T) {
	rsaA, edB := key("rsa-a"), key("ed-b")
	s := newJWKSServer(t, docOf(t, rsaA))
	clock := newFakeClock()
	r := newRemote(t, s, clock, time.Hour)

	s.serve(http.StatusOK, docOf(t, rsaA, edB))
	gate := make(chan struct{})
	s.setGate(gate)
	clock.Advance(DefaultMinRefetchInterval)

	token := edB.token(t)
	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := r.VerifySignature(t.Context(), token)
			errs <- err
		}()
	}
	// Let the refetch reach the server and the other tokens queue behind it.
	waitFor(t, "the refetch", func() bool { return s.requests.Load() == 2 })
	time.Sleep(50 * time.Millisecond)
	close(gate)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("VerifySignature() error = %v", err)
		}
	}
	if got := s.requests.Load(); got != 2 {
		t.Errorf("requests = %d, want 2", got)
	}
}

// TestRemoteRefetchWaitHonoursContext checks that a token waiting on a slow
// refetch gives up with its own request's context.
func TestRemoteRefetchWaitHonoursContext(t *testing.T) {
	rsaA := key("rsa-a")
	s := newJWKSServer(t, docOf(t, rsaA))
	clock := newFakeClock()
	r := newRemote(t, s, clock, time.Hour)
	gate := make(chan struct{})
	s.setGate(gate)
	defer close(gate)
	clock.Advance(DefaultMinRefetchInterval)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := r.VerifySignature(ctx, sign(t, rsaA.priv, rsaA.alg, "unknown", testClaims))
	if !errors.Is(err, ErrUnknownKeyID) || !strings.Contains(err.Error(), "context deadline exceeded") {
		t.Fatalf("error = %v, want ErrUnknownKeyID after the deadline", err)
	}
}

func TestRemoteBackgroundRefresh(t *testing.T) {
	rsaA, edA := key("rsa-a"), key("ed-a")
	s := newJWKSServer(t, docOf(t, rsaA))
	// The fake clock never moves: only the background refresh fetches.
	clock := newFakeClock()
	r := newRemote(t, s, clock, 10*time.Millisecond)
	oldToken, newToken := rsaA.token(t), edA.token(t)

	// The issuer fails: the last good keys stay in use.
	s.serve(http.StatusBadGateway, nil)
	waitFor(t, "a failed refresh", func() bool { return r.LastError() != nil })
	if !strings.Contains(r.LastError().Error(), "HTTP status 502") {
		t.Errorf("LastError() = %v", r.LastError())
	}
	if _, err := r.VerifySignature(t.Context(), oldToken); err != nil {
		t.Errorf("after a failed refresh: %v", err)
	}
	if r.Len() != 1 || !r.LastFetch().Equal(clock.Now()) {
		t.Errorf("Len() = %d, LastFetch() = %v", r.Len(), r.LastFetch())
	}

	// A broken document is a failure too.
	s.serve(http.StatusOK, []byte(`{"keys":[]}`))
	waitFor(t, "a refresh with an empty set", func() bool {
		err := r.LastError()
		return err != nil && strings.Contains(err.Error(), "key set is empty")
	})

	// The issuer is back with a new key.
	s.serve(http.StatusOK, docOf(t, rsaA, edA))
	waitFor(t, "a good refresh", func() bool { return r.LastError() == nil && r.Len() == 2 })
	for _, tok := range []string{oldToken, newToken} {
		if _, err := r.VerifySignature(t.Context(), tok); err != nil {
			t.Errorf("after refresh: %v", err)
		}
	}
}

func TestRemoteStopsWithContext(t *testing.T) {
	rsaA := key("rsa-a")
	s := newJWKSServer(t, docOf(t, rsaA))
	ctx, cancel := context.WithCancel(t.Context())
	r, err := NewRemote(ctx, RemoteOptions{URL: s.URL, CAPEM: s.caPEM(), RefreshInterval: time.Millisecond, MinRefetchInterval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	time.Sleep(50 * time.Millisecond) // let a fetch in flight end
	before := s.requests.Load()
	time.Sleep(50 * time.Millisecond)
	if after := s.requests.Load(); after != before {
		t.Errorf("requests went from %d to %d after ctx was cancelled", before, after)
	}
	// The last keys still verify, and an unknown kid does not fetch.
	if _, err := r.VerifySignature(t.Context(), rsaA.token(t)); err != nil {
		t.Errorf("after stop: %v", err)
	}
	_, err = r.VerifySignature(t.Context(), sign(t, rsaA.priv, rsaA.alg, "unknown", testClaims))
	if !errors.Is(err, ErrUnknownKeyID) || !strings.Contains(err.Error(), "key set stopped") {
		t.Errorf("unknown kid after stop: %v", err)
	}
	if after := s.requests.Load(); after != before {
		t.Errorf("requests went from %d to %d after ctx was cancelled", before, after)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
