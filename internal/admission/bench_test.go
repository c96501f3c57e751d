package admission

import (
	"fmt"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8sadmission "k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
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

// benchVariables are what the policies of
// benchValidationPoliciesWithVariables share, by name, in each policy.
var benchVariables = []admissionregistrationv1.Variable{
	{Name: "containers", Expression: "object.spec.containers"},
	{Name: "images", Expression: "variables.containers.map(c, c.image)"},
	{Name: "registry", Expression: "'registry.example/'"},
}

// benchValidationPoliciesWithVariables are benchValidationPolicies, each
// with variables and a second validation that reads them.
func benchValidationPoliciesWithVariables(n int) []*admissionv1alpha1.ValidationPolicy {
	ps := benchValidationPolicies(n)
	for _, p := range ps {
		p.Spec.Variables = benchVariables
		p.Spec.Validations = append(p.Spec.Validations, admissionv1alpha1.Validation{
			Expression: "variables.images.all(i, i.startsWith(variables.registry)) && size(variables.containers) < 10",
			Message:    "images from elsewhere",
		})
	}
	return ps
}

// BenchmarkValidate100PoliciesWithVariables is BenchmarkValidate100Policies
// with three variables in each policy, read by a second validation.
func BenchmarkValidate100PoliciesWithVariables(b *testing.B) {
	benchValidate(b, benchValidationPoliciesWithVariables(100))
}

// BenchmarkValidate100Policies is the design's budget point: admission
// with 100 matching CEL policies, under 1 ms. Each iteration is one
// request: its object decoded, 100 policies matched and evaluated.
func BenchmarkValidate100Policies(b *testing.B) {
	benchValidate(b, benchValidationPolicies(100))
}

func benchValidate(b *testing.B, policies []*admissionv1alpha1.ValidationPolicy) {
	e := validationEngine(b, testNamespaces, policies...)
	req := podRequest(b, admissionv1.Create, benchPod(), nil)
	if res := e.Validate(ctx, req); res.Err() != nil || len(res.Matched) != len(policies) || len(res.Denials) > 0 {
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

// celMutationPolicies are n matching policies of the CEL forms:
// applyConfiguration on every container, on labels, and jsonPatch
// expressions, in turn.
func celMutationPolicies(n int) []*admissionv1alpha1.MutationPolicy {
	var ps []*admissionv1alpha1.MutationPolicy
	for i := range n {
		name := fmt.Sprintf("cel-%02d", i)
		var mu admissionv1alpha1.Mutation
		switch i % 3 {
		case 0:
			field := []string{"allowPrivilegeEscalation: false", "readOnlyRootFilesystem: true", "runAsNonRoot: true", "privileged: false"}[i/3%4]
			mu = applyConfiguration(`Object{spec: Object.spec{containers: object.spec.containers.map(c, Object.spec.containers{name: c.name, securityContext: Object.spec.containers.securityContext{` + field + `}})}}`)
		case 1:
			mu = applyConfiguration(`Object{metadata: Object.metadata{labels: {"` + name + `": string(size(object.spec.containers))}}}`)
		default:
			mu = jsonPatchExpr(`has(object.metadata.annotations) ? ` +
				`[JSONPatch{op: "add", path: "/metadata/annotations/" + jsonpatch.escapeKey("example.com/` + name + `"), value: object.metadata.name}] : ` +
				`[JSONPatch{op: "add", path: "/metadata/annotations", value: {"example.com/` + name + `": object.metadata.name}}]`)
		}
		ps = append(ps, mutationPolicy(name, int32(i%3), match(withRules(resourceRule("", "v1", []string{"pods"}, anyOp))), mu))
	}
	return ps
}

// BenchmarkMutate20CELMutations mutates a pod with 20 policies of CEL
// mutations, applied by the API server's patchers, and computes the
// response patch.
func BenchmarkMutate20CELMutations(b *testing.B) {
	benchMutate(b, celMutationPolicies(20))
}

// BenchmarkMutate20Policies mutates a pod with 20 matching policies of
// every form, and computes the response patch.
func BenchmarkMutate20Policies(b *testing.B) {
	benchMutate(b, mixedMutationPolicies(20))
}

func benchMutate(b *testing.B, policies []*admissionv1alpha1.MutationPolicy) {
	e := mutationEngine(b, testNamespaces, policies...)
	req := podRequest(b, admissionv1.Create, benchPod(), nil)
	if res := e.Mutate(ctx, req); res.Err() != nil || res.Rejection() != "" || len(res.Matched) != len(policies) || len(res.Patch) == 0 {
		b.Fatalf("matched %d, patch %v, err %v, rejection %q", len(res.Matched), res.Patch, res.Err(), res.Rejection())
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
	benchUpstreamVAP(b, benchValidationPolicies(100))
}

// BenchmarkUpstreamVAP100PoliciesWithVariables is the baseline of
// BenchmarkValidate100PoliciesWithVariables.
func BenchmarkUpstreamVAP100PoliciesWithVariables(b *testing.B) {
	benchUpstreamVAP(b, benchValidationPoliciesWithVariables(100))
}

func benchUpstreamVAP(b *testing.B, policies []*admissionv1alpha1.ValidationPolicy) {
	envs := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	var validators []validating.Validator
	for _, p := range policies {
		fc, err := plugincel.NewCompositedCompiler(envs)
		if err != nil {
			b.Fatal(err)
		}
		vars := plugincel.OptionalVariableDeclarations{HasAuthorizer: true}
		for _, v := range p.Spec.Variables {
			fc.CompileAndStoreVariable(&validating.Variable{Name: v.Name, Expression: v.Expression}, vars, environment.StoredExpressions)
		}
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

// BenchmarkUpstreamMAP20CELMutations is the baseline of
// BenchmarkMutate20CELMutations: the same 20 mutations compiled as the
// API server compiles a MutatingAdmissionPolicy's and applied in order by
// its own patchers (k8s.io/apiserver's mutating policy patch package),
// each to what the one before produced, for the same pod decoded from
// JSON. Matching, reinvocation and the response patch are left out, so
// the baseline is, if anything, flattered.
func BenchmarkUpstreamMAP20CELMutations(b *testing.B) {
	envs := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	opts := plugincel.OptionalVariableDeclarations{HasAuthorizer: true, HasPatchTypes: true}
	var patchers []patch.Patcher
	for _, p := range celMutationPolicies(20) {
		fc, err := plugincel.NewCompositedCompiler(envs)
		if err != nil {
			b.Fatal(err)
		}
		for _, mu := range p.Spec.Mutations {
			if mu.ApplyConfiguration != nil {
				patchers = append(patchers, patch.NewApplyConfigurationPatcher(fc.CompileMutatingEvaluator(&patch.ApplyConfigurationCondition{Expression: mu.ApplyConfiguration.Expression}, opts, environment.StoredExpressions)))
			} else {
				patchers = append(patchers, patch.NewJSONPatcher(fc.CompileMutatingEvaluator(&patch.JSONPatchCondition{Expression: mu.JSONPatch.Expression}, opts, environment.StoredExpressions)))
			}
		}
	}
	req := podRequest(b, admissionv1.Create, benchPod(), nil)
	ns := testNamespaces["caribou"]
	gvr := schema.GroupVersionResource(req.Resource)
	gvk := schema.GroupVersionKind(req.Kind)
	tc := StaticTypeConverter()
	mutate := func() {
		var obj runtime.Object = &unstructured.Unstructured{}
		if err := obj.(*unstructured.Unstructured).UnmarshalJSON(req.Object.Raw); err != nil {
			b.Fatal(err)
		}
		for _, p := range patchers {
			attrs := k8sadmission.NewAttributesRecord(obj, nil, gvk, req.Namespace, req.Name, gvr,
				"", k8sadmission.Create, nil, false, &user.DefaultInfo{Name: req.UserInfo.Username})
			va := &k8sadmission.VersionedAttributes{Attributes: attrs, VersionedKind: gvk}
			va.VersionedObject.Set(obj)
			out, err := p.Patch(ctx, patch.Request{MatchedResource: gvr, VersionedAttributes: va, ObjectInterfaces: objectInterfaces,
				Namespace: ns, TypeConverter: tc}, RequestCostBudget)
			if err != nil {
				b.Fatal(err)
			}
			obj = out
		}
	}
	mutate()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		mutate()
	}
}
