package admission

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/generic"
	"k8s.io/apiserver/pkg/admission/plugin/policy/matching"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/client-go/applyconfigurations"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	corev1listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// The API server's own ValidatingAdmissionPolicy and
// MutatingAdmissionPolicy admission, for tests that put a generated
// policy beside the webhook: upstream's dispatchers (validating. and
// mutating.NewDispatcher) with its matcher (resource rules, selectors,
// matchPolicy), binding, parameters, match conditions, failure policy and
// validation actions, over the request as admission.Attributes, the
// object typed as the API server holds a built-in kind. Only compiling a
// policy is written out here, as each plugin's compilePolicy does it: that
// function is unexported.

// upstreamAnswer is what the API server answered.
type upstreamAnswer struct {
	// err is the admission error (a denial, a rejection); nil admits.
	err error
	// warnings are the warnings sent to the client.
	warnings []string
	// annotations are the audit annotations recorded.
	annotations map[string]string
	// object is the object after mutating admission, through the typed
	// form (see typedPod).
	object map[string]any
}

// upstreamDeniedMessage is the message of validation decision msg of
// policy name in the API server's denial.
func upstreamDeniedMessage(name, msg string) string {
	return fmt.Sprintf("ValidatingAdmissionPolicy '%s' with binding '%s' denied request: %s", name, name, msg)
}

// upstreamWarning is the warning for msg of a Warn binding of policy name.
func upstreamWarning(name, msg string) string {
	return fmt.Sprintf("Validation failed for ValidatingAdmissionPolicy '%s' with binding '%s': %s", name, name, msg)
}

// upstreamValidationFailureKey is the audit annotation of Audit bindings.
const upstreamValidationFailureKey = "validation.policy.admission.k8s.io/validation_failure"

// upstreamObjectInterfaces convert and create the built-in kinds, as the
// API server's do.
var upstreamObjectInterfaces = admission.NewObjectInterfacesFromScheme(clientgoscheme.Scheme)

// upstreamMatcher is the dispatchers' matcher over testNamespaces, each
// with the kubernetes.io/metadata.name label the API server sets. It has
// no client: every namespace the tests name is in its lister.
func upstreamMatcher(t *testing.T) *matching.Matcher {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for name, ns := range testNamespaces {
		n := ns.DeepCopy()
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[corev1.LabelMetadataName] = name
		if err := idx.Add(n); err != nil {
			t.Fatal(err)
		}
	}
	return matching.NewMatcher(corev1listers.NewNamespaceLister(idx), nil)
}

// recordingAttributes keeps the audit annotations the dispatchers add.
type recordingAttributes struct {
	admission.Attributes
	annotations map[string]string
}

func (a *recordingAttributes) AddAnnotation(key, value string) error {
	if a.annotations == nil {
		a.annotations = map[string]string{}
	}
	a.annotations[key] = value
	return nil
}

func (a *recordingAttributes) AddAnnotationWithLevel(key, value string, _ auditinternal.Level) error {
	return a.AddAnnotation(key, value)
}

// warningRecorder keeps the warnings added to the context.
type warningRecorder []string

func (w *warningRecorder) AddWarning(_, text string) { *w = append(*w, text) }

// upstreamAttributes is req as the API server's admission chain sees it.
func upstreamAttributes(t *testing.T, req *admissionv1.AdmissionRequest) *recordingAttributes {
	t.Helper()
	decode := func(raw []byte) runtime.Object {
		if len(raw) == 0 {
			return nil
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			t.Fatal(err)
		}
		return u
	}
	extra := map[string][]string{}
	for k, v := range req.UserInfo.Extra {
		extra[k] = v
	}
	u := &user.DefaultInfo{Name: req.UserInfo.Username, UID: req.UserInfo.UID, Groups: req.UserInfo.Groups, Extra: extra}
	return &recordingAttributes{Attributes: admission.NewAttributesRecord(decode(req.Object.Raw), decode(req.OldObject.Raw),
		schema.GroupVersionKind(req.Kind), req.Namespace, req.Name, schema.GroupVersionResource(req.Resource), req.SubResource,
		admission.Operation(req.Operation), nil, ptr.Deref(req.DryRun, false), u)}
}

// upstreamValidating admits req through the API server's validating
// policy dispatcher, with vap and its binding.
func upstreamValidating(t *testing.T, vap *admissionregistrationv1.ValidatingAdmissionPolicy, bind *admissionregistrationv1.ValidatingAdmissionPolicyBinding, req *admissionv1.AdmissionRequest) upstreamAnswer {
	t.Helper()
	d := validating.NewDispatcher(nil, generic.NewPolicyMatcher(upstreamMatcher(t)))
	hooks := []validating.PolicyHook{{Policy: vap, Bindings: []*admissionregistrationv1.ValidatingAdmissionPolicyBinding{bind}, Evaluator: compileUpstreamVAP(vap)}}
	var w warningRecorder
	a := upstreamAttributes(t, req)
	err := d.Dispatch(warning.WithWarningRecorder(ctx, &w), a, upstreamObjectInterfaces, hooks)
	return upstreamAnswer{err: err, warnings: w, annotations: a.annotations}
}

// upstreamMAP is a generated MutatingAdmissionPolicy and its binding.
type upstreamMAP struct {
	policy  *admissionregistrationv1.MutatingAdmissionPolicy
	binding *admissionregistrationv1.MutatingAdmissionPolicyBinding
}

// upstreamMutating admits req through the API server's mutating policy
// dispatcher, with the policies in order, once (no reinvocation), with the
// static type converter of the built-in kinds.
func upstreamMutating(t *testing.T, req *admissionv1.AdmissionRequest, policies ...upstreamMAP) upstreamAnswer {
	t.Helper()
	tcm := patch.NewTypeConverterManager(applyconfigurations.NewTypeConverter(clientgoscheme.Scheme), nil)
	d := mutating.NewDispatcher(nil, upstreamMatcher(t), tcm)
	var hooks []mutating.PolicyHook
	for _, p := range policies {
		hooks = append(hooks, mutating.PolicyHook{Policy: p.policy, Bindings: []*admissionregistrationv1.MutatingAdmissionPolicyBinding{p.binding}, Evaluator: compileUpstreamMAP(p.policy)})
	}
	var w warningRecorder
	a := upstreamAttributes(t, req)
	err := d.Dispatch(warning.WithWarningRecorder(ctx, &w), a, upstreamObjectInterfaces, hooks)
	out := upstreamAnswer{err: err, warnings: w, annotations: a.annotations}
	if o, ok := a.GetObject().(*unstructured.Unstructured); ok && o != nil {
		out.object = typedPod(t, o.Object)
	}
	return out
}

// typedPod is a pod as the API server's typed form has it (what it
// decodes, converted back): what mutating admission of a built-in kind
// produces, so that the webhook's result compares with it.
func typedPod(t *testing.T, o map[string]any) map[string]any {
	t.Helper()
	var pod corev1.Pod
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o, &pod); err != nil {
		t.Fatal(err)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&pod)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// compileUpstreamVAP compiles policy as validating.compilePolicy does.
func compileUpstreamVAP(policy *admissionregistrationv1.ValidatingAdmissionPolicy) validating.Validator {
	hasParam := policy.Spec.ParamKind != nil
	optionalVars := plugincel.OptionalVariableDeclarations{HasParams: hasParam, HasAuthorizer: true}
	expressionOptionalVars := plugincel.OptionalVariableDeclarations{HasParams: hasParam, HasAuthorizer: false}
	failurePolicy := policy.Spec.FailurePolicy
	filterCompiler, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		return validating.NewValidator(nil, nil, nil, nil, failurePolicy, err)
	}
	vars := make([]plugincel.NamedExpressionAccessor, len(policy.Spec.Variables))
	for i, v := range policy.Spec.Variables {
		vars[i] = &validating.Variable{Name: v.Name, Expression: v.Expression}
	}
	filterCompiler.CompileAndStoreVariables(vars, optionalVars, environment.StoredExpressions)
	var matcher matchconditions.Matcher
	if conds := policy.Spec.MatchConditions; len(conds) > 0 {
		accessors := make([]plugincel.ExpressionAccessor, len(conds))
		for i := range conds {
			accessors[i] = (*matchconditions.MatchCondition)(&conds[i])
		}
		matcher = matchconditions.NewMatcher(filterCompiler.CompileCondition(accessors, optionalVars, environment.StoredExpressions), failurePolicy, "policy", "validate", policy.Name)
	}
	validations := make([]plugincel.ExpressionAccessor, len(policy.Spec.Validations))
	messages := make([]plugincel.ExpressionAccessor, len(policy.Spec.Validations))
	for i, v := range policy.Spec.Validations {
		validations[i] = &validating.ValidationCondition{Expression: v.Expression, Message: v.Message, Reason: v.Reason}
		if v.MessageExpression != "" {
			messages[i] = &validating.MessageExpressionCondition{MessageExpression: v.MessageExpression}
		}
	}
	annotations := make([]plugincel.ExpressionAccessor, len(policy.Spec.AuditAnnotations))
	for i, a := range policy.Spec.AuditAnnotations {
		annotations[i] = &validating.AuditAnnotationCondition{Key: a.Key, ValueExpression: a.ValueExpression}
	}
	return validating.NewValidator(
		filterCompiler.CompileCondition(validations, optionalVars, environment.StoredExpressions),
		matcher,
		filterCompiler.CompileCondition(annotations, optionalVars, environment.StoredExpressions),
		filterCompiler.CompileCondition(messages, expressionOptionalVars, environment.StoredExpressions),
		failurePolicy, nil)
}

// compileUpstreamMAP compiles policy as mutating.compilePolicy does.
func compileUpstreamMAP(policy *admissionregistrationv1.MutatingAdmissionPolicy) mutating.PolicyEvaluator {
	opts := plugincel.OptionalVariableDeclarations{HasParams: policy.Spec.ParamKind != nil, HasAuthorizer: true}
	compiler, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		return mutating.PolicyEvaluator{Error: err}
	}
	var vars []plugincel.NamedExpressionAccessor
	if policy.Spec.Variables != nil {
		vars = make([]plugincel.NamedExpressionAccessor, len(policy.Spec.Variables))
		for i, v := range policy.Spec.Variables {
			vars[i] = &validating.Variable{Name: v.Name, Expression: v.Expression}
		}
	}
	compiler.CompileAndStoreVariables(vars, opts, environment.StoredExpressions)
	var matcher matchconditions.Matcher
	if conds := policy.Spec.MatchConditions; len(conds) > 0 {
		accessors := make([]plugincel.ExpressionAccessor, len(conds))
		for i := range conds {
			accessors[i] = (*matchconditions.MatchCondition)(&conds[i])
		}
		matcher = matchconditions.NewMatcher(compiler.CompileCondition(accessors, opts, environment.StoredExpressions), policy.Spec.FailurePolicy, "policy", "validate", policy.Name)
	}
	var patchers []patch.Patcher
	patchOptions := opts
	patchOptions.HasPatchTypes = true
	for _, m := range policy.Spec.Mutations {
		switch m.PatchType {
		case admissionregistrationv1.PatchTypeJSONPatch:
			if m.JSONPatch != nil {
				patchers = append(patchers, patch.NewJSONPatcher(compiler.CompileMutatingEvaluator(&patch.JSONPatchCondition{Expression: m.JSONPatch.Expression}, patchOptions, environment.StoredExpressions)))
			}
		case admissionregistrationv1.PatchTypeApplyConfiguration:
			if m.ApplyConfiguration != nil {
				patchers = append(patchers, patch.NewApplyConfigurationPatcher(compiler.CompileMutatingEvaluator(&patch.ApplyConfigurationCondition{Expression: m.ApplyConfiguration.Expression}, patchOptions, environment.StoredExpressions)))
			}
		}
	}
	return mutating.PolicyEvaluator{Matcher: matcher, Mutators: patchers, CompositedCompiler: compiler}
}

// upstreamAuditFailures are the messages of the validation_failure audit
// annotation, "INDEX: MESSAGE" each.
func upstreamAuditFailures(t *testing.T, a upstreamAnswer) []string {
	t.Helper()
	v, ok := a.annotations[upstreamValidationFailureKey]
	if !ok {
		return nil
	}
	var failures []validating.ValidationFailureValue
	if err := json.Unmarshal([]byte(v), &failures); err != nil {
		t.Fatalf("%s: %v", v, err)
	}
	out := make([]string, len(failures))
	for i, f := range failures {
		out[i] = fmt.Sprintf("%d: %s", f.ExpressionIndex, f.Message)
	}
	return out
}

// webhookAuditFailures are the Audits of res as upstreamAuditFailures
// reads the API server's.
func webhookAuditFailures(res ValidateResult) []string {
	var out []string
	for _, v := range res.Audits {
		out = append(out, fmt.Sprintf("%d: %s", v.Index, v.Message))
	}
	return out
}

// upstreamPolicyAnnotations are the audit annotations of policy name,
// by key ("NAME/KEY" as the API server records them).
func upstreamPolicyAnnotations(a upstreamAnswer, name string) map[string]string {
	var out map[string]string
	for k, v := range a.annotations {
		if key, ok := strings.CutPrefix(k, name+"/"); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[key] = v
		}
	}
	return out
}

// webhookPolicyAnnotations are the audit annotations of policy name in
// res, by key ("NAME.KEY" in the webhook's answer).
func webhookPolicyAnnotations(res ValidateResult, name string) map[string]string {
	var out map[string]string
	for k, v := range res.AuditAnnotations() {
		if key, ok := strings.CutPrefix(k, name+"."); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[key] = v
		}
	}
	return out
}
