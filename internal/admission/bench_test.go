package admission

import (
	"fmt"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/admission/admissiontest"
)

// benchValidations are the benchmarks' pod checks.
var benchValidations = admissiontest.PodChecks

// benchValidationPolicies are n ValidationPolicies that all match a pod
// creation in namespace caribou; some also have a condition or a
// namespaceSelector.
func benchValidationPolicies(n int) []*admissionv1alpha1.ValidationPolicy {
	ps := make([]*admissionv1alpha1.ValidationPolicy, n)
	for i := range ps {
		var opts []matchOption
		switch i % 10 {
		case 3:
			opts = append(opts, withConditions("!request.dryRun"))
		case 7:
			opts = append(opts, withNamespaceSelector(labelSelector("team", "caribou")))
		}
		p := validationPolicy(fmt.Sprintf("policy-%03d", i), admissionv1alpha1.ActionDeny, match(opts...), benchValidations[i%len(benchValidations)])
		p.Spec.Validations[0].Message = "check failed"
		ps[i] = p
	}
	return ps
}

// BenchmarkValidate100Policies is the design's budget point: admission
// with 100 matching CEL policies, under 1 ms. Each iteration is one
// request: its object decoded, 100 policies matched and evaluated.
func BenchmarkValidate100Policies(b *testing.B) {
	e := validationEngine(b, testNamespaces, benchValidationPolicies(100)...)
	req := podRequest(b, admissionv1.Create, benchPod(), nil)
	if res := e.Validate(ctx, req); res.Err() != nil || len(res.Matched) != 100 || len(res.Denials) > 0 {
		b.Fatalf("matched %d, denials %v, err %v", len(res.Matched), res.Denials, res.Err())
	}
	b.ReportAllocs()
	b.ResetTimer()
	// Each decision is timed too, for the percentiles.
	lat := make(admissiontest.Latencies, 0, 4096)
	for b.Loop() {
		lat.Time(func() {
			if res := e.Validate(ctx, req); len(res.Denials) > 0 {
				b.Fatal(res.Denials)
			}
		})
	}
	lat.Report(b)
}

// BenchmarkValidate100PoliciesNoMatch is the cost of a request that no
// policy's rules match: nothing is decoded.
func BenchmarkValidate100PoliciesNoMatch(b *testing.B) {
	e := validationEngine(b, testNamespaces, benchValidationPolicies(100)...)
	req := request{op: admissionv1.Create, group: "apps", kind: "Deployment", resource: "deployments", namespace: "caribou", name: "d",
		object: obj(b, map[string]any{"metadata": map[string]any{"name": "d"}})}.build()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res := e.Validate(ctx, req); len(res.Matched) > 0 {
			b.Fatal(res.Matched)
		}
	}
}

// BenchmarkMutate20Policies mutates a pod with 20 matching policies of
// every form, and computes the response patch.
func BenchmarkMutate20Policies(b *testing.B) {
	e := mutationEngine(b, testNamespaces, mixedMutationPolicies(20)...)
	req := podRequest(b, admissionv1.Create, benchPod(), nil)
	if res := e.Mutate(ctx, req); res.Err() != nil || len(res.Matched) != 20 || len(res.Patch) == 0 {
		b.Fatalf("matched %d, patch %v, err %v", len(res.Matched), res.Patch, res.Err())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res := e.Mutate(ctx, req); res.Patch == nil {
			b.Fatal("no patch")
		}
	}
}
