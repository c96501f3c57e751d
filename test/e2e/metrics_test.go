package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// /metrics exposes decisions per phase and result, latency histograms with
// buckets from 50µs, policies loaded and failing per kind, snapshot
// generations and the certificate's expiry.
func TestMetricsExposeTheOperatorsFigures(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	// Make sure at least one authentication decision happened.
	_, token := user(t, ctx, "metrics-user")
	if _, err := whoami(ctx, t, token); err != nil {
		t.Fatal(err)
	}
	var m string
	eventually(t, ctx, "the metrics are exposed", func(ctx context.Context) (bool, error) {
		var err error
		m, err = scrape(ctx)
		return err == nil && strings.Contains(m, `portcullis_decisions_total{phase="authenticate",result="authenticated"}`), err
	})
	for _, want := range []string{
		`portcullis_decision_duration_seconds_bucket{phase="authenticate",le="5e-05"}`,
		`portcullis_policies{kind="StaticToken",state="loaded"}`,
		`portcullis_policies{kind="AccessPolicy",state="failing"}`,
		`portcullis_policies{kind="ValidationPolicy",state="loaded"}`,
		`portcullis_snapshot_generation{phase="authorize"}`,
		`portcullis_certificate_expiry_timestamp_seconds `,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// /metrics is HTTPS behind authentication and authorization: an anonymous
// GET is 401, a token the API server authenticates but that may not get
// /metrics is 403, plain HTTP gets no metrics; and what it serves never
// carries a token.
func TestMetricsNeedAnAuthorizedCaller(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	_, token := user(t, ctx, "metrics-outsider")
	get := func(scheme, bearer string) (int, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+env.MetricsAddr+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := metricsClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, _, err := get("https", ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("anonymous GET /metrics: %d, %v; want 401", code, err)
	}
	eventually(t, ctx, "a user without the right gets 403", func(ctx context.Context) (bool, error) {
		code, _, err := get("https", token)
		return code == http.StatusForbidden, fmt.Errorf("status %d, %v", code, err)
	})
	if code, body, err := get("http", ""); err == nil && code == http.StatusOK && strings.Contains(body, "portcullis_") {
		t.Error("plain HTTP serves the metrics")
	}
	m, err := scrape(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m, token) {
		t.Error("/metrics carries a token")
	}
	if strings.Contains(operatorLog.String(), token) {
		t.Error("the operator's log carries a token")
	}
}
