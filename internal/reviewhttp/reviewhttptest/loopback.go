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

// Loopback benchmarks each case over loopback TLS side by side with base
// (the no-op): every iteration POSTs the review to base and to the case,
// one request at a time on one kept-alive connection each, in an order
// that alternates, checking every answer. Interleaved request by request,
// both meet the same moments of a shared, noisy host, so their ratio holds
// where two runs one after the other would differ by a third. It reports
// the case's p50, p90 and p99, base's p50 (noop-p50-ns) and the ratio of
// the two p50s (x-noop-p50). Allocations are BenchmarkInProcess's: here
// they would mix both handlers and both clients.
func Loopback(b *testing.B, base Case, cases []Case) {
	for _, c := range cases {
		b.Run(c.Name, func(b *testing.B) {
			callBase, call := dial(b, base), dial(b, c)
			lat := make(admissiontest.Latencies, 0, 8192)
			baseLat := make(admissiontest.Latencies, 0, 8192)
			i := 0
			for b.Loop() {
				if i++; i%2 == 0 {
					baseLat.Time(callBase)
					lat.Time(call)
				} else {
					lat.Time(call)
					baseLat.Time(callBase)
				}
			}
			lat.Report(b)
			if p, pb := lat.Percentile(50), baseLat.Percentile(50); pb > 0 {
				b.ReportMetric(float64(pb.Nanoseconds()), "noop-p50-ns")
				b.ReportMetric(float64(p)/float64(pb), "x-noop-p50")
			}
		})
	}
}

// dial serves c.Handler over loopback TLS (HTTP/1.1, as the API server
// calls webhooks) and returns a call of it on one kept-alive connection,
// made once here so that the handshake stays outside the measure.
func dial(b *testing.B, c Case) func() {
	b.Helper()
	srv := httptest.NewUnstartedServer(c.Handler)
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
		resp, err := client.Post(srv.URL+c.Path+"?timeout=10s", "application/json", strings.NewReader(c.Body))
		if err != nil {
			b.Fatal(err)
		}
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !c.OK(buf.Bytes()) {
			b.Fatalf("%s: status %d, error %v: %s", c.Name, resp.StatusCode, err, buf.Bytes())
		}
	}
	call()
	return call
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

// InProcess benchmarks each case in process (an httptest request and
// recorder: no network, no TLS), as a sub-benchmark of its name, checking
// every answer: where a handler's own time and allocations go, without
// the transport's.
func InProcess(b *testing.B, cases []Case) {
	for _, c := range cases {
		b.Run(c.Name, func(b *testing.B) {
			serve := func() {
				req := httptest.NewRequest(http.MethodPost, c.Path+"?timeout=10s", strings.NewReader(c.Body))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				c.Handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !c.OK(rec.Body.Bytes()) {
					b.Fatalf("%s: status %d: %s", c.Name, rec.Code, rec.Body)
				}
			}
			serve()
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
		})
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
