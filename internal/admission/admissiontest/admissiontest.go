// Package admissiontest holds what the admission benchmarks share, so
// that the engine's (internal/admission) and the handler's
// (webhooks/admission) measure the same decision: the pod, the checks
// and the percentiles they report.
package admissiontest

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// NoPrivileged is DESIGN.md's example validation: no privileged
// containers.
const NoPrivileged = "object.spec.containers.all(c, !has(c.securityContext) || c.securityContext.privileged != true)"

// PodChecks are realistic validations of a pod, NoPrivileged first. Pod
// passes every one.
var PodChecks = []string{
	NoPrivileged,
	"object.spec.containers.all(c, c.image.startsWith('registry.example/'))",
	"object.spec.containers.all(c, has(c.resources) && has(c.resources.limits) && 'memory' in c.resources.limits)",
	"has(object.metadata.labels) && 'app' in object.metadata.labels",
	"!has(object.spec.hostNetwork) || object.spec.hostNetwork == false",
}

// Pod is the benchmarks' pod, in namespace caribou, as decoded JSON: two
// labels and three containers, each with an image, a pull policy and
// limits.
func Pod() map[string]any {
	var containers []any
	for _, name := range []string{"app", "sidecar", "log-shipper"} {
		containers = append(containers, map[string]any{
			"name":            name,
			"image":           "registry.example/" + name + ":1.0",
			"imagePullPolicy": "Always",
			"resources":       map[string]any{"limits": map[string]any{"cpu": "500m", "memory": "256Mi"}},
		})
	}
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata": map[string]any{
			"name": "web-0", "namespace": "caribou",
			"labels": map[string]any{"app": "web", "tier": "frontend"},
		},
		"spec": map[string]any{"containers": containers, "nodeName": "node-1"},
	}
}

// Latencies are the durations of timed operations, for the percentiles a
// latency budget is stated in (a benchmark's mean alone hides the tail).
type Latencies []time.Duration

// Time runs f and records how long it took.
func (l *Latencies) Time(f func()) {
	start := time.Now()
	f()
	*l = append(*l, time.Since(start))
}

// Report adds the p50, p90 and p99 to b's results.
func (l Latencies) Report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	sorted := l.sorted()
	for _, p := range []int{50, 90, 99} {
		b.ReportMetric(float64(sorted.at(p).Nanoseconds()), fmt.Sprintf("p%d-ns", p))
	}
}

// Percentile is the p-th percentile (0 when nothing was timed).
func (l Latencies) Percentile(p int) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l.sorted().at(p)
}

func (l Latencies) sorted() Latencies { return slices.Sorted(slices.Values(l)) }

// at is the p-th percentile of sorted, non-empty l.
func (l Latencies) at(p int) time.Duration { return l[len(l)*p/100] }
