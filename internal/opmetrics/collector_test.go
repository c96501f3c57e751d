package opmetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	c := New(
		[]Kind{{Name: "AccessPolicy", Counts: func() (int, int) { return 3, 1 }}},
		[]Phase{{Name: "authorize", Generation: func() uint64 { return 7 }}},
		"",
	)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	want := `
# HELP portcullis_policies Policies by kind and state: loaded (compiled and served) or failing (reported in status, not served).
# TYPE portcullis_policies gauge
portcullis_policies{kind="AccessPolicy",state="failing"} 1
portcullis_policies{kind="AccessPolicy",state="loaded"} 3
# HELP portcullis_snapshot_generation Generation of the snapshot each phase serves; it grows with every published change.
# TYPE portcullis_snapshot_generation gauge
portcullis_snapshot_generation{phase="authorize"} 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "portcullis_policies", "portcullis_snapshot_generation"); err != nil {
		t.Fatal(err)
	}
}
