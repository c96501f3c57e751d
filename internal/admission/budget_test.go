package admission

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/utils/ptr"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// upstreamValidate runs validations, with variables and match conditions,
// as the API server's ValidatingAdmissionPolicy validator does
// (validating.NewValidator, filters compiled as the plugin's compilePolicy
// compiles them), on req.
func upstreamValidate(t *testing.T, vars []admissionregistrationv1.Variable, conds []admissionregistrationv1.MatchCondition, vals []admissionregistrationv1.Validation, req *admissionv1.AdmissionRequest) validating.ValidateResult {
	t.Helper()
	comp, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		t.Fatal(err)
	}
	opts := plugincel.OptionalVariableDeclarations{HasAuthorizer: true}
	for i := range vars {
		comp.CompileAndStoreVariable(&validating.Variable{Name: vars[i].Name, Expression: vars[i].Expression}, opts, environment.StoredExpressions)
	}
	var cs, vs, ms []plugincel.ExpressionAccessor
	for i := range conds {
		cs = append(cs, (*matchconditions.MatchCondition)(&conds[i]))
	}
	for _, v := range vals {
		vs = append(vs, &validating.ValidationCondition{Expression: v.Expression, Message: v.Message})
		var m plugincel.ExpressionAccessor
		if v.MessageExpression != "" {
			m = &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression}
		}
		ms = append(ms, m)
	}
	fp := ptr.To(admissionregistrationv1.Fail)
	var matcher matchconditions.Matcher
	if len(cs) > 0 {
		matcher = matchconditions.NewMatcher(comp.CompileCondition(cs, opts, environment.StoredExpressions), fp, "policy", "validate", "p")
	}
	v := validating.NewValidator(
		comp.CompileCondition(vs, opts, environment.StoredExpressions), matcher,
		comp.CompileCondition(nil, opts, environment.StoredExpressions),
		comp.CompileCondition(ms, plugincel.OptionalVariableDeclarations{}, environment.StoredExpressions),
		fp, nil)
	objU := &unstructured.Unstructured{}
	if err := objU.UnmarshalJSON(req.Object.Raw); err != nil {
		t.Fatal(err)
	}
	attrs := admission.NewAttributesRecord(objU, nil, schema.GroupVersionKind(req.Kind), req.Namespace, req.Name,
		schema.GroupVersionResource(req.Resource), req.SubResource, admission.Operation(req.Operation), nil, false,
		&user.DefaultInfo{Name: req.UserInfo.Username})
	va := &admission.VersionedAttributes{Attributes: attrs, VersionedKind: schema.GroupVersionKind(req.Kind)}
	va.VersionedObject.Set(objU)
	return v.Validate(ctx, schema.GroupVersionResource(req.Resource), va, nil, testNamespaces[req.Namespace], RequestCostBudget, nil)
}

// The API server evaluates every validation's messageExpression, failing
// or not, on the budget the validations leave; running out makes every
// validation of the policy an error (denied under Fail). So does the
// engine, on the same input.
func TestMessageExpressionsSpendWhatValidationsLeaveAsUpstream(t *testing.T) {
	msgExpr := "object.spec.text.contains('zz') ? 'found' : 'not found'"
	o := podObject("p", nil, "app")
	spec(o)["text"] = strings.Repeat("a", 1_000_000)
	req := podRequest(t, admissionv1.Create, o, nil)

	// What one messageExpression costs.
	probe := validationPolicy("probe", admissionv1alpha1.ActionDeny, match(), "false")
	probe.Spec.Validations[0].MessageExpression = msgExpr
	r := NewRequest(req, testNamespaces)
	var pr ValidateResult
	mustCompileValidation(t, probe).evaluate(ctx, r, &pr)
	spent := RequestCostBudget - r.RemainingBudget()
	n := int(RequestCostBudget/spent) + 1
	t.Logf("one messageExpression costs %d; %d validations", spent, n)

	exprs := make([]string, n)
	for i := range exprs {
		exprs[i] = "true"
	}
	p := validationPolicy("msg-heavy", admissionv1alpha1.ActionDeny, match(), exprs...)
	var native []admissionregistrationv1.Validation
	for i := range p.Spec.Validations {
		p.Spec.Validations[i].Message = "m"
		p.Spec.Validations[i].MessageExpression = msgExpr
		native = append(native, admissionregistrationv1.Validation{Expression: "true", Message: "m", MessageExpression: msgExpr})
	}

	up := upstreamValidate(t, nil, nil, native, req)
	upDenied := 0
	for _, d := range up.Decisions {
		if d.Action == validating.ActionDeny {
			upDenied++
		}
	}
	res := validationEngine(t, testNamespaces, p).Validate(ctx, req)
	t.Logf("upstream: %d of %d decisions deny (first: %+v); webhook: allowed=%v errors=%d", upDenied, len(up.Decisions), up.Decisions[0].Message, res.Allowed(), len(res.Errors))
	if upDenied == 0 {
		t.Fatalf("the API server admits: the probe's cost %d does not exhaust the budget", spent)
	}
	if res.Allowed() || len(res.Errors) != n {
		t.Errorf("the API server denies this policy's request (%d validations out of budget), the engine: allowed=%v, %d errors", upDenied, res.Allowed(), len(res.Errors))
	}
}

// The API server evaluates a policy's variables afresh for its match
// conditions and again for its validations (a composition context per
// filter), charging each; so does the engine, on the same input.
func TestVariablesChargedInEachEvaluationAsUpstream(t *testing.T) {
	heavy := "object.spec.text.contains('zz')" // 100003
	o := podObject("p", nil, "app")
	spec(o)["text"] = strings.Repeat("a", 1_000_000)
	req := podRequest(t, admissionv1.Create, o, nil)

	vals := make([]string, 99)
	for i := range vals {
		vals[i] = "!" + heavy
	}
	vals = append(vals, "!variables.v")
	vars := []admissionregistrationv1.Variable{{Name: "v", Expression: heavy}}
	conds := []admissionregistrationv1.MatchCondition{{Name: "reads-v", Expression: "!variables.v"}}

	var native []admissionregistrationv1.Validation
	for _, v := range vals {
		native = append(native, admissionregistrationv1.Validation{Expression: v, Message: "m"})
	}
	up := upstreamValidate(t, vars, conds, native, req)
	upDenied := 0
	for _, d := range up.Decisions {
		if d.Action == validating.ActionDeny {
			upDenied++
		}
	}
	p := validationPolicy("p", admissionv1alpha1.ActionDeny, match(withConditions("!variables.v")), vals...)
	p.Spec.Variables = vars
	for i := range p.Spec.Validations {
		p.Spec.Validations[i].Message = "m"
	}
	res := validationEngine(t, testNamespaces, p).Validate(ctx, req)
	msg := ""
	if len(up.Decisions) > 0 {
		msg = up.Decisions[len(up.Decisions)-1].Message
	}
	t.Logf("upstream: %d of %d decisions deny (%s); webhook: allowed=%v errors=%v", upDenied, len(up.Decisions), msg, res.Allowed(), res.Errors)
	if upDenied == 0 {
		t.Fatalf("the API server admits (%s): the variable's cost does not exhaust the budget", msg)
	}
	if res.Allowed() {
		t.Errorf("the API server denies (out of budget), the engine allows")
	}
}

// The API server gives each mutation of a MutatingAdmissionPolicy its own
// budget (dispatcher.go: patcher.Patch(ctx, req, RuntimeCELCostBudget) per
// mutation), so a policy of 12 mutations, each well under the per-call
// limit and together over one budget, applies every one; as in the
// engine, which makes the same object. JSON patches run on the webhook
// only, so the API server's policy is written out here.
func TestEachMutationHasItsOwnBudgetAsUpstream(t *testing.T) {
	var parts []string
	for i := 0; i < 9; i++ {
		parts = append(parts, "object.metadata.annotations['big'].contains('z"+string(rune('0'+i))+"')")
	}
	expr := func(i int) string {
		return "(" + strings.Join(parts, " || ") + fmt.Sprintf(`) ? [] : [JSONPatch{op: "add", path: "/metadata/labels/m%d", value: "set"}]`, i)
	}
	const n = 12
	o := podObject("p", map[string]string{"app": "web"}, "app")
	meta(o)["annotations"] = map[string]any{"big": strings.Repeat("a", 1_000_000)}
	req := podRequest(t, admissionv1.Create, o, nil)

	// What one mutation costs the API server: under the per-call limit,
	// and n of them over one budget.
	cost := upstreamMutationCost(t, expr(0), req)
	t.Logf("one mutation costs the API server %d; %d cost %d of a budget of %d", cost, n, n*cost, RequestCostBudget)
	if cost >= celconfig.PerCallLimit || n*cost <= RequestCostBudget {
		t.Fatalf("one mutation costs %d: the test needs each under %d and %d of them over %d", cost, celconfig.PerCallLimit, n, RequestCostBudget)
	}

	var muts []admissionv1alpha1.Mutation
	mp := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "many"},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{namedRule([]string{""}, []string{"v1"}, []string{"pods"}, create, update)},
				MatchPolicy:   ptr.To(admissionregistrationv1.Equivalent), NamespaceSelector: &metav1.LabelSelector{}, ObjectSelector: &metav1.LabelSelector{},
			},
			FailurePolicy:      ptr.To(admissionregistrationv1.Fail),
			ReinvocationPolicy: admissionregistrationv1.NeverReinvocationPolicy,
		},
	}
	for i := 0; i < n; i++ {
		muts = append(muts, jsonPatchExpr(expr(i)))
		mp.Spec.Mutations = append(mp.Spec.Mutations, admissionregistrationv1.Mutation{
			PatchType: admissionregistrationv1.PatchTypeJSONPatch, JSONPatch: &admissionregistrationv1.JSONPatch{Expression: expr(i)}})
	}
	up := upstreamMutating(t, req, upstreamMAP{mp, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "many"}, Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: "many"}}})
	if up.err != nil {
		t.Fatalf("the API server: %v", up.err)
	}
	labels, _ := up.object["metadata"].(map[string]any)["labels"].(map[string]any)
	if len(labels) != n+1 {
		t.Fatalf("the API server applied %d of %d mutations: labels %v", len(labels)-1, n, labels)
	}

	res := mutationEngine(t, testNamespaces, mutationPolicy("many", 1, match(), muts...)).Mutate(ctx, req)
	if len(res.Errors) > 0 || res.Rejection() != "" || len(res.Patch) == 0 {
		t.Fatalf("the engine: errors %v, patch %v; 12 mutations each under the per-call limit ran out of a shared budget, where the API server budgets each mutation separately", res.Errors, res.Patch)
	}
	if got := typedPod(t, applyPatch(t, req.Object.Raw, res)); !reflect.DeepEqual(got, up.object) {
		t.Errorf("the engine made\n%v\nthe API server\n%v", got["metadata"], up.object["metadata"])
	}
}

// upstreamMutationCost is what the API server's evaluator charges for the
// JSON patch expression expr on req.
func upstreamMutationCost(t *testing.T, expr string, req *admissionv1.AdmissionRequest) int64 {
	t.Helper()
	comp, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		t.Fatal(err)
	}
	eval := comp.CompileMutatingEvaluator(&patch.JSONPatchCondition{Expression: expr},
		plugincel.OptionalVariableDeclarations{HasAuthorizer: true, HasPatchTypes: true}, environment.StoredExpressions)
	if errs := eval.CompilationErrors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	a := upstreamAttributes(t, req)
	va, err := admission.NewVersionedAttributes(a, a.GetKind(), upstreamObjectInterfaces)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource(req.Resource)
	res, remaining, err := eval.ForInput(ctx, va, plugincel.CreateAdmissionRequest(a, metav1.GroupVersionResource(gvr), req.Kind), plugincel.OptionalVariableBindings{},
		testNamespaces[req.Namespace], RequestCostBudget)
	if err == nil {
		err = res.Error
	}
	if err != nil {
		t.Fatal(err)
	}
	return RequestCostBudget - remaining
}
