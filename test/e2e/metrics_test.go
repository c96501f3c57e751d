package e2e

import (
	"context"
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
