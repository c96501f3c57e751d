package admission

import (
	"fmt"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8sadmission "k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"

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

// BenchmarkUpstreamVAP100Policies is the baseline BenchmarkValidate100Policies
// is measured against: the API server's own in-process evaluation of the
// same 100 validations as ValidatingAdmissionPolicies (k8s.io/apiserver's
// validating.Validator, compiled as its plugin compiles a policy), one
// Validate per policy for the same pod, decoded from JSON each time as
// Portcullis decodes it. Matching (rules, selectors) is the dispatcher's
// and is left out here, so the baseline is, if anything, flattered.
func BenchmarkUpstreamVAP100Policies(b *testing.B) {
	envs := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	var validators []validating.Validator
	for _, p := range benchValidationPolicies(100) {
		fc, err := plugincel.NewCompositedCompiler(envs)
		if err != nil {
			b.Fatal(err)
		}
		vars := plugincel.OptionalVariableDeclarations{HasAuthorizer: true}
		var conds, msgs []plugincel.ExpressionAccessor
		for _, v := range p.Spec.Validations {
			conds = append(conds, &validating.ValidationCondition{Expression: v.Expression, Message: v.Message})
			msgs = append(msgs, nil)
		}
		fp := admissionregistrationv1.Fail
		validators = append(validators, validating.NewValidator(
			fc.CompileCondition(conds, vars, environment.StoredExpressions), nil,
			fc.CompileCondition(nil, vars, environment.StoredExpressions),
			fc.CompileCondition(msgs, plugincel.OptionalVariableDeclarations{}, environment.StoredExpressions),
			&fp, nil))
	}
	req := podRequest(b, admissionv1.Create, benchPod(), nil)
	ns := testNamespaces["caribou"]
	gvr := schema.GroupVersionResource(req.Resource)
	validate := func() {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(req.Object.Raw); err != nil {
			b.Fatal(err)
		}
		attrs := k8sadmission.NewAttributesRecord(obj, nil, schema.GroupVersionKind(req.Kind), req.Namespace, req.Name, gvr,
			"", k8sadmission.Create, nil, false, &user.DefaultInfo{Name: req.UserInfo.Username})
		va := &k8sadmission.VersionedAttributes{Attributes: attrs, VersionedKind: schema.GroupVersionKind(req.Kind)}
		va.VersionedObject.Set(obj)
		for _, v := range validators {
			res := v.Validate(ctx, gvr, va, nil, ns, RequestCostBudget, nil)
			for _, d := range res.Decisions {
				if d.Action != validating.ActionAdmit {
					b.Fatalf("%v: %s", d.Action, d.Message)
				}
			}
		}
	}
	validate()
	b.ReportAllocs()
	b.ResetTimer()
	lat := make(admissiontest.Latencies, 0, 4096)
	for b.Loop() {
		lat.Time(validate)
	}
	lat.Report(b)
}
