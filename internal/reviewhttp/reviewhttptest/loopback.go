// Package reviewhttptest measures review handlers as the API server calls
// them: POSTs over loopback TLS on a kept-alive connection, side by side
// with a no-op handler that reads the body and answers a constant, the
// floor a handler is compared with (DESIGN.md: within 1.5x).
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
