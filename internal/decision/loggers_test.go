package decision_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/portcullis-io/portcullis/internal/decision"
)

// syncBuffer is a sink several loggers write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range strings.Split(s.b.String(), "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// TestDecisionLogIsNotSampled records more decisions in well under a second
// than the production sampler lets through (100 of one message a second,
// then one in 100), through the loggers the operator is built with from its
// default flags: every decision has its line, while the operator's own log
// is still sampled.
func TestDecisionLogIsNotSampled(t *testing.T) {
	const n = 1000
	sink := &syncBuffer{}
	operatorLog, decisionLog := decision.Loggers(&crzap.Options{DestWriter: sink})

	rec, err := decision.NewRecorder(decisionLog, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		rec.Record(decision.Entry{Phase: decision.PhaseAuthorize, Result: "allow", User: "alice", Verb: "get", Resource: "configmaps"})
	}
	for i := 0; i < n; i++ {
		operatorLog.Info("the same operator message")
	}

	if got := sink.lines(`"logger":"decision"`); got != n {
		t.Errorf("decision log: %d lines for %d decisions", got, n)
	}
	// The operator's log keeps its sampling: the first 100 of the second
	// and one in 100 after them.
	if got := sink.lines("the same operator message"); got >= n || got < 100 {
		t.Errorf("operator log: %d lines of %d same messages; want the sampler's 100 to %d", got, n, n-1)
	}
	// Both use the flags' encoder: JSON at info.
	if got := sink.lines(`"level":"info"`); got < n+100 {
		t.Errorf("%d JSON info lines, want at least %d", got, n+100)
	}
}
