// Package reviewhttptest measures review handlers as the API server calls
// them: POSTs over loopback TLS on a kept-alive connection, side by side
// with a no-op handler that reads the body and answers a constant, the
// floor a handler is compared with (DESIGN.md: within 1.5x); and the same
// handlers in process, for where their own time goes.
package reviewhttptest

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portcullis-io/portcullis/internal/admission/admissiontest"
	"github.com/portcullis-io/portcullis/internal/decision"
)

// NoOp reads the review and answers answer.
func NoOp(answer string) http.Handler {
	b := []byte(answer)
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write(b)
	})
}

// Loopback benchmarks POST path with body to h served over loopback TLS,
// one request at a time on one kept-alive connection, checking every
// answer with ok, and reports p50, p90 and p99.
func Loopback(b *testing.B, h http.Handler, path, body string, ok func(answer []byte) bool) {
	b.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = false
	srv.StartTLS()
	b.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, MinVersion: tls.VersionTLS12}
	tr.MaxIdleConnsPerHost = 1
	client := &http.Client{Transport: tr}
	b.Cleanup(tr.CloseIdleConnections)
	var buf bytes.Buffer
	call := func() {
		resp, err := client.Post(srv.URL+path+"?timeout=10s", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !ok(buf.Bytes()) {
			b.Fatalf("status %d, error %v: %s", resp.StatusCode, err, buf.Bytes())
		}
	}
	call() // the handshake, outside the measure
	b.ReportAllocs()
	lat := make(admissiontest.Latencies, 0, 8192)
	b.ResetTimer()
	for b.Loop() {
		lat.Time(call)
	}
	lat.Report(b)
}

// Case is one handler to measure: the review POSTed to Path and a check
// of every answer.
type Case struct {
	Name    string
	Handler http.Handler
	Path    string
	Body    string
	OK      func(answer []byte) bool
}

// Each measures every case, as a sub-benchmark of its name, with measure
// (Loopback or InProcess).
func Each(b *testing.B, cases []Case, measure func(b *testing.B, h http.Handler, path, body string, ok func(answer []byte) bool)) {
	for _, c := range cases {
		b.Run(c.Name, func(b *testing.B) { measure(b, c.Handler, c.Path, c.Body, c.OK) })
	}
}

// InProcess benchmarks h serving POST path with body in process (an
// httptest request and recorder: no network, no TLS), checking every
// answer with ok: where a handler's own time goes, without the
// transport's.
func InProcess(b *testing.B, h http.Handler, path, body string, ok func(answer []byte) bool) {
	b.Helper()
	serve := func() {
		req := httptest.NewRequest(http.MethodPost, path+"?timeout=10s", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !ok(rec.Body.Bytes()) {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	serve()
	b.ReportAllocs()
	for b.Loop() {
		serve()
	}
}

// Recorder is a decision recorder as the operator runs it: every decision
// logged at info as JSON by the operator's unsampled decision logger (here
// to io.Discard) and counted in a registry.
func Recorder(b *testing.B) *decision.Recorder {
	b.Helper()
	_, log := decision.Loggers(&zap.Options{DestWriter: io.Discard})
	r, err := decision.NewRecorder(log, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return r
}
