package decision_test

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portcullis-io/portcullis/internal/decision"
)

// hiddenZap is a logr sink that hides the zap logger beneath it, so that
// a Recorder logs through logr's key-value list.
type hiddenZap struct{ logr.LogSink }

// everything is an entry with every field set.
var everything = decision.Entry{
	Phase: decision.PhaseValidate, Result: "denied", User: "bob", Verb: "create", Resource: "configmaps",
	Namespace: "caribou", Policy: "ValidationPolicy/has-app", Reason: `label "app" is required`, UID: "7b9a",
	Latency:      1234567 * time.Nanosecond,
	DryRun:       []decision.DryRun{{Policy: "ValidationPolicy/p", Would: "deny"}},
	Audit:        []decision.Violation{{Policy: "ValidationPolicy/a", Message: "m1"}, {Policy: "ValidationPolicy/b", Message: "m2"}},
	PolicyErrors: []decision.PolicyError{{Policy: "ValidationPolicy/e", FailurePolicy: "Ignore", Message: "boom"}},
	Exemptions:   []decision.Exemption{{Policy: "ValidationPolicy/x", Exception: "PolicyException/y"}},
}

// TestRecordWritesTheLogrLine: the decision line written straight to zap
// (the operator's decision log) is the line logr's key-value list writes
// through the same sink, field for field and in the same order.
func TestRecordWritesTheLogrLine(t *testing.T) {
	line := func(hide bool) map[string]any {
		t.Helper()
		sink := &syncBuffer{}
		_, log := decision.Loggers(&crzap.Options{DestWriter: sink})
		if hide {
			log = logr.New(hiddenZap{log.GetSink()})
		}
		rec, err := decision.NewRecorder(log, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		rec.Record(everything)
		out := strings.TrimSpace(sink.b.String())
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil || strings.Count(out, "\n") != 0 {
			t.Fatalf("not one JSON line (%v): %s", err, out)
		}
		if m["ts"] == nil {
			t.Fatalf("no timestamp: %s", out)
		}
		delete(m, "ts")
		keys := []string{}
		dec := json.NewDecoder(strings.NewReader(out))
		_, _ = dec.Token()
		for dec.More() {
			k, _ := dec.Token()
			keys = append(keys, k.(string))
			var skip json.RawMessage
			_ = dec.Decode(&skip)
		}
		m["(keys)"] = strings.Join(keys, ",")
		return m
	}
	direct, viaLogr := line(false), line(true)
	d, _ := json.Marshal(direct)
	l, _ := json.Marshal(viaLogr)
	if string(d) != string(l) {
		t.Errorf("straight to zap:\n%s\nthrough logr:\n%s", d, l)
	}
	for _, want := range []string{`"latency":"1.234567ms"`, `"audit":["ValidationPolicy/a: m1","ValidationPolicy/b: m2"]`, `"logger":"decision"`, `"msg":"decision"`} {
		if !strings.Contains(string(d), want) {
			t.Errorf("no %s in %s", want, d)
		}
	}
}

// A Recorder given a logger below info (V(1)) logs at that level, not at
// info: the production log at info has no decision line.
func TestRecordKeepsTheLoggersLevel(t *testing.T) {
	sink := &syncBuffer{}
	_, log := decision.Loggers(&crzap.Options{DestWriter: sink})
	rec, err := decision.NewRecorder(log.V(1), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	rec.Record(everything)
	if got := sink.lines("decision"); got != 0 {
		t.Errorf("%d decision lines logged at V(1) with the log at info", got)
	}
	rec, _ = decision.NewRecorder(log, prometheus.NewRegistry())
	rec.Record(everything)
	if got := sink.lines("decision"); got != 1 {
		t.Errorf("%d decision lines at V(0), want 1", got)
	}
}

// BenchmarkRecord is one decision's log line (JSON, to io.Discard) and
// metrics, as the operator writes them.
func BenchmarkRecord(b *testing.B) {
	_, log := decision.Loggers(&crzap.Options{DestWriter: io.Discard})
	rec, err := decision.NewRecorder(log, prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	e := decision.Entry{Phase: decision.PhaseValidate, Result: "allowed", User: "bob", Verb: "create", Resource: "configmaps", Namespace: "caribou", UID: "7b9a4b1e-4c51-4e5a-9f0e-2a0f3c1d5e6f", Latency: 12345 * time.Nanosecond}
	b.ReportAllocs()
	for b.Loop() {
		rec.Record(e)
	}
}
