// Package opmetrics exposes the operator's state as Prometheus metrics,
// read at scrape time: policies loaded and failing per kind, the
// generation of each phase's snapshot, and the serving certificate's
// expiry. Per-decision metrics live in internal/decision.
package opmetrics
