package admission

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// Native execution: a policy the API server can evaluate itself is
// generated as a ValidatingAdmissionPolicy or MutatingAdmissionPolicy and
// its binding, with the same match, conditions, variables, parameters,
// actions and messages, and the operator's own exclusions and the
// policy's exceptions as match conditions. The native form is read from
// the spec when the policy is compiled (one reading of each spec); what
// has no native form is said, naming the field.

// Labels and annotations of the generated objects.
const (
	// GeneratedLabel marks every generated object; its value is the
	// source kind in lower case (validationpolicy or mutationpolicy).
	GeneratedLabel = "admission.portcullis.io/generated-from"
	// SourceAnnotation is the source policy's name.
	SourceAnnotation = "admission.portcullis.io/policy"
	// HashAnnotation is a digest of the generated spec: the webhook stops
	// serving a policy only once the API server holds this very form.
	HashAnnotation = "admission.portcullis.io/spec-hash"
)

// Suffixes of the generated names: policy NAME becomes
// NAME.validate.portcullis.io, so its audit annotations are recorded as
// NAME.validate.portcullis.io/KEY.
const (
	nativeValidationSuffix = ".validate.portcullis.io"
	nativeMutationSuffix   = ".mutate.portcullis.io"
)

// maxNativeMatchConditions is the API server's limit on a policy's
// matchConditions.
const maxNativeMatchConditions = 64

// Exclusions is what the operator keeps out of all policy-driven
// admission, the webhooks' and the generated policies' alike: namespaces
// (by name, as a namespaceSelector) and match conditions (our own kinds,
// the operator's own service account).
type Exclusions struct {
	Namespaces []string
	Conditions []admissionregistrationv1.MatchCondition
}

// NotExpressibleError says which feature of a policy the API server cannot
// evaluate natively.
type NotExpressibleError struct {
	// Field is the path of the feature, under spec.
	Field string
	// Why it has no native form.
	Why string
}

func (e *NotExpressibleError) Error() string { return e.Field + ": " + e.Why }

// nativeBase is the native form of what both kinds share, read from the
// spec at compile time; nil when a policy did not compile.
type nativeBase struct {
	name                              string
	uid                               types.UID
	paramKind                         *admissionregistrationv1.ParamKind
	paramRef                          *admissionregistrationv1.ParamRef
	variables                         []admissionregistrationv1.Variable
	rules                             []admissionregistrationv1.RuleWithOperations
	namespaceSelector, objectSelector *metav1.LabelSelector
	excludedNamespaces                []string
	matchPolicy                       admissionregistrationv1.MatchPolicyType
	conditions                        []admissionregistrationv1.MatchCondition
	failurePolicy                     admissionregistrationv1.FailurePolicyType
	// notExpressible is the first feature without a native form.
	notExpressible *NotExpressibleError
}

func newNativeBase(name string, uid types.UID, match *admissionv1alpha1.Match, m *matcher, sc *scope, kind *admissionregistrationv1.ParamKind,
	ref *admissionregistrationv1.ParamRef, vars []admissionregistrationv1.Variable, fp admissionregistrationv1.FailurePolicyType) *nativeBase {
	nb := &nativeBase{
		name: name, uid: uid, paramKind: kind.DeepCopy(), paramRef: ref.DeepCopy(),
		rules:             m.rulesCopy(),
		namespaceSelector: match.NamespaceSelector.DeepCopy(), objectSelector: match.ObjectSelector.DeepCopy(),
		excludedNamespaces: slices.Clone(m.excluded),
		matchPolicy:        ptr.Deref(match.MatchPolicy, admissionregistrationv1.Equivalent),
		failurePolicy:      fp,
	}
	for i := range vars {
		nb.variables = append(nb.variables, *vars[i].DeepCopy())
	}
	for _, c := range match.Conditions {
		nb.conditions = append(nb.conditions, admissionregistrationv1.MatchCondition{Name: c.Name, Expression: c.Expression})
	}
	switch {
	case ref != nil:
		// The API server collects a binding's parameters before it
		// evaluates the match conditions, where the operator's exclusions
		// (its own service account) and PolicyExceptions are: a parameter
		// that cannot be read would fail those requests too.
		nb.notExpressible = &NotExpressibleError{Field: "spec.paramRef", Why: "the API server reads parameters before the match conditions that carry the operator's exclusions and PolicyExceptions, so a parameter it cannot read would fail requests they exempt"}
	case kind != nil:
		// Without a paramRef the webhook evaluates with params null; the
		// API server resolves the paramKind first, and one it cannot
		// resolve (a CRD not installed yet, or gone) fails every request
		// the rules match, before the match conditions that exempt some.
		nb.notExpressible = &NotExpressibleError{Field: "spec.paramKind", Why: "the API server resolves a paramKind before the match conditions that carry the operator's exclusions and PolicyExceptions, so a kind it cannot resolve would fail requests they exempt"}
	default:
		nb.notExpressible = namespaceInConditions(sc, match.Conditions, vars)
	}
	return nb
}

// namespaceInConditions is why a policy has no native form when one of
// its match conditions reads namespaceObject, itself or through the
// variables it reads: the API server evaluates a policy's matchConditions
// without the namespace (matchconditions.matcher passes none, and the
// variables a condition reads are evaluated there too), so namespaceObject
// is null in them, where the webhook gives the request's namespace. The
// condition would fail natively: every request rejected under Fail, the
// policy never applied under Ignore. nil when no condition reads it.
func namespaceInConditions(sc *scope, conds []admissionv1alpha1.MatchCondition, vars []admissionregistrationv1.Variable) *NotExpressibleError {
	if len(conds) == 0 {
		return nil
	}
	byName := make(map[string]string, len(vars))
	names := make([]string, 0, len(vars))
	for _, v := range vars {
		byName[v.Name] = v.Expression
		names = append(names, v.Name)
	}
	// readsNamespace says whether variable name reads namespaceObject,
	// itself or through the variables it reads; done holds the answers
	// and marks a variable being looked at (false until answered), so a
	// cycle ends.
	done := map[string]bool{}
	var readsNamespace func(name string) bool
	readsNamespace = func(name string) bool {
		if v, ok := done[name]; ok {
			return v
		}
		text, ok := byName[name]
		if !ok {
			return false
		}
		done[name] = false
		r := sc.reads(text)
		read := r.variables
		if r.allVariables {
			read = names
		}
		done[name] = r.namespaceObject || slices.ContainsFunc(read, readsNamespace)
		return done[name]
	}
	for i, c := range conds {
		r := sc.reads(c.Expression)
		how := ""
		if r.namespaceObject {
			how = "it reads namespaceObject"
		} else {
			read := r.variables
			if r.allVariables {
				read = names
			}
			if j := slices.IndexFunc(read, readsNamespace); j >= 0 {
				how = "it reads namespaceObject through variables." + read[j]
			}
		}
		if how != "" {
			return &NotExpressibleError{Field: fmt.Sprintf("spec.match.conditions[%d].expression", i),
				Why: how + ", which the API server leaves null in match conditions (it evaluates them without the namespace), so natively the condition would fail, rejecting every request it is asked about under failurePolicy Fail and never applying the policy under Ignore"}
		}
	}
	return nil
}

// matchResources is the native match: the policy's rules and selectors,
// with its excluded namespaces and the operator's in the
// namespaceSelector (which, as the webhook's, applies to namespaced
// objects and to Namespaces themselves).
func (nb *nativeBase) matchResources(x Exclusions) *admissionregistrationv1.MatchResources {
	mr := &admissionregistrationv1.MatchResources{
		NamespaceSelector: nb.namespaceSelector.DeepCopy(),
		ObjectSelector:    nb.objectSelector.DeepCopy(),
		MatchPolicy:       ptr.To(nb.matchPolicy),
	}
	for _, r := range nb.rules {
		mr.ResourceRules = append(mr.ResourceRules, admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: *r.DeepCopy()})
	}
	excluded := append(slices.Clone(x.Namespaces), nb.excludedNamespaces...)
	slices.Sort(excluded)
	excluded = slices.Compact(excluded)
	if len(excluded) > 0 {
		if mr.NamespaceSelector == nil {
			mr.NamespaceSelector = &metav1.LabelSelector{}
		}
		mr.NamespaceSelector.MatchExpressions = append(mr.NamespaceSelector.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: excluded,
		})
	}
	if mr.ObjectSelector == nil {
		mr.ObjectSelector = &metav1.LabelSelector{}
	}
	if mr.NamespaceSelector == nil {
		mr.NamespaceSelector = &metav1.LabelSelector{}
	}
	return mr
}

// matchConditions are the policy's conditions, the operator's exclusions
// and one condition per exception that names the policy: every one must
// hold, as in the webhook, where an exempted request skips the policy.
func (nb *nativeBase) matchConditions(x Exclusions, exceptions []*CompiledException) ([]admissionregistrationv1.MatchCondition, *NotExpressibleError) {
	out := slices.Clone(nb.conditions)
	out = append(out, x.Conditions...)
	for _, ex := range exceptions {
		if !ex.ExpiresAt.IsZero() {
			// A native policy cannot tell the time: it would exempt for as
			// long as nobody regenerates it.
			return nil, &NotExpressibleError{Field: "PolicyException " + ex.Name + " spec.expiresAt", Why: "a native policy cannot tell the time, so an exception that expires is kept by the webhook"}
		}
		out = append(out, admissionregistrationv1.MatchCondition{Name: exceptionConditionName(ex.Name), Expression: "!(" + ex.exemptsExpression() + ")"})
	}
	seen := make(map[string]bool, len(out))
	for _, c := range out {
		if seen[c.Name] {
			return nil, &NotExpressibleError{Field: "spec.match.conditions", Why: fmt.Sprintf("the name %q is also the name of one the operator adds", c.Name)}
		}
		seen[c.Name] = true
	}
	if len(out) > maxNativeMatchConditions {
		return nil, &NotExpressibleError{Field: "spec.match.conditions", Why: fmt.Sprintf(
			"its %d conditions, the operator's %d and its %d PolicyExceptions make more than the %d match conditions a native policy may have",
			len(nb.conditions), len(x.Conditions), len(exceptions), maxNativeMatchConditions)}
	}
	return out, nil
}

// exceptionConditionName names the match condition of exception name: a
// qualified name, whose name part is at most 63 characters.
func exceptionConditionName(name string) string {
	n := "exception-" + name
	if len(validation.IsQualifiedName(n)) > 0 {
		sum := sha256.Sum256([]byte(name))
		n = "exception-" + hex.EncodeToString(sum[:8])
	}
	return "policyexceptions.portcullis.io/" + n
}

// generatedMeta is the metadata of a generated object: owned by the
// source policy (so it goes when the policy does, even with the operator
// down), labelled and annotated with its source and the digest.
func (nb *nativeBase) generatedMeta(name, kindLabel, sourceKind string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:        name,
		Labels:      map[string]string{GeneratedLabel: kindLabel, "app.kubernetes.io/managed-by": "portcullis"},
		Annotations: map[string]string{SourceAnnotation: nb.name},
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: admissionv1alpha1.GroupVersion.String(), Kind: sourceKind, Name: nb.name, UID: nb.uid,
		}},
	}
}

// nativeName is the generated objects' name for policy name, or why there
// is none.
func nativeName(name, suffix string) (string, *NotExpressibleError) {
	n := name + suffix
	if msgs := validation.IsDNS1123Subdomain(n); len(msgs) > 0 {
		return "", &NotExpressibleError{Field: "metadata.name", Why: fmt.Sprintf("the generated name %q is not valid: %s", n, strings.Join(msgs, "; "))}
	}
	return n, nil
}

// NativeValidation is the generated form of the validation policy p
// (which must be the one its registry serves), with its exceptions and
// the operator's exclusions; err says why there is none (a
// *NotExpressibleError, or the policy's own configuration error).
func NativeValidation(p *CompiledValidation, exceptions []*CompiledException, x Exclusions) (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding, error) {
	if p.native == nil {
		return nil, nil, errNoNativeForm(p.err)
	}
	nb := p.native.base
	name, conds, err := nb.prepare(nativeValidationSuffix, x, exceptions)
	if err != nil {
		return nil, nil, err
	}
	pol := &admissionregistrationv1.ValidatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicy"},
		ObjectMeta: nb.generatedMeta(name, "validationpolicy", KindValidationPolicy),
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind:        nb.paramKind.DeepCopy(),
			MatchConstraints: nb.matchResources(x),
			Validations:      slices.Clone(p.native.validations),
			FailurePolicy:    ptr.To(nb.failurePolicy),
			AuditAnnotations: slices.Clone(p.native.auditAnnotations),
			MatchConditions:  conds,
			Variables:        slices.Clone(nb.variables),
		},
	}
	bind := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "ValidatingAdmissionPolicyBinding"},
		ObjectMeta: nb.generatedMeta(name, "validationpolicy", KindValidationPolicy),
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ParamRef:          nb.paramRef.DeepCopy(),
			ValidationActions: []admissionregistrationv1.ValidationAction{validationAction(p.Action)},
		},
	}
	stamp(pol.Spec, bind.Spec, &pol.ObjectMeta, &bind.ObjectMeta)
	return pol, bind, nil
}

// NativeMutation is the generated form of the mutation policy p; see
// NativeValidation.
func NativeMutation(p *CompiledMutation, exceptions []*CompiledException, x Exclusions) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding, error) {
	if p.native == nil {
		return nil, nil, errNoNativeForm(p.err)
	}
	nb := p.native.base
	name, conds, err := nb.prepare(nativeMutationSuffix, x, exceptions)
	if err != nil {
		return nil, nil, err
	}
	pol := &admissionregistrationv1.MutatingAdmissionPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "MutatingAdmissionPolicy"},
		ObjectMeta: nb.generatedMeta(name, "mutationpolicy", KindMutationPolicy),
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			ParamKind:        nb.paramKind.DeepCopy(),
			MatchConstraints: nb.matchResources(x),
			Variables:        slices.Clone(nb.variables),
			Mutations:        slices.Clone(p.native.mutations),
			FailurePolicy:    ptr.To(nb.failurePolicy),
			MatchConditions:  conds,
			// As the webhook's: mutations are idempotent, and being
			// called again after another's change keeps them in place.
			ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
		},
	}
	bind := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: admissionregistrationv1.SchemeGroupVersion.String(), Kind: "MutatingAdmissionPolicyBinding"},
		ObjectMeta: nb.generatedMeta(name, "mutationpolicy", KindMutationPolicy),
		Spec: admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{
			PolicyName: name,
			ParamRef:   nb.paramRef.DeepCopy(),
		},
	}
	stamp(pol.Spec, bind.Spec, &pol.ObjectMeta, &bind.ObjectMeta)
	return pol, bind, nil
}

// prepare is what both kinds' native forms start from: the generated
// name and the match conditions, or why there is no native form.
func (nb *nativeBase) prepare(suffix string, x Exclusions, exceptions []*CompiledException) (string, []admissionregistrationv1.MatchCondition, error) {
	if nb.notExpressible != nil {
		return "", nil, nb.notExpressible
	}
	name, nerr := nativeName(nb.name, suffix)
	if nerr != nil {
		return "", nil, nerr
	}
	conds, nerr := nb.matchConditions(x, exceptions)
	if nerr != nil {
		return "", nil, nerr
	}
	return name, conds, nil
}

// errNoNativeForm is why a policy that did not compile cleanly has no
// native form.
func errNoNativeForm(err error) error {
	if err != nil {
		return err
	}
	return &NotExpressibleError{Field: "spec", Why: "an expression does not compile"}
}

// stamp annotates both generated objects with the digest of both specs.
func stamp(policySpec, bindingSpec any, metas ...*metav1.ObjectMeta) {
	b, _ := json.Marshal([]any{policySpec, bindingSpec})
	sum := sha256.Sum256(b)
	for _, m := range metas {
		m.Annotations[HashAnnotation] = hex.EncodeToString(sum[:12])
	}
}

func validationAction(a admissionv1alpha1.Action) admissionregistrationv1.ValidationAction {
	switch a {
	case admissionv1alpha1.ActionWarn:
		return admissionregistrationv1.Warn
	case admissionv1alpha1.ActionAudit:
		return admissionregistrationv1.Audit
	}
	return admissionregistrationv1.Deny
}

// nativeValidation is the native form of a ValidationPolicy's own fields.
type nativeValidation struct {
	base             *nativeBase
	validations      []admissionregistrationv1.Validation
	auditAnnotations []admissionregistrationv1.AuditAnnotation
}

func newNativeValidation(nb *nativeBase, spec *admissionv1alpha1.ValidationPolicySpec) *nativeValidation {
	nv := &nativeValidation{base: nb}
	if len(spec.AuditAnnotations) > 0 && spec.Action != "" && spec.Action != admissionv1alpha1.ActionDeny && nb.failurePolicy == admissionregistrationv1.Fail && nb.notExpressible == nil {
		// The API server denies when an audit annotation fails to
		// evaluate under Fail, whatever the binding's actions; the
		// webhook warns or audits, as the action says.
		nb.notExpressible = &NotExpressibleError{Field: "spec.auditAnnotations", Why: "with action " + string(spec.Action) + " and failurePolicy Fail, the API server would deny a request whose audit annotation fails to evaluate"}
	}
	for _, v := range spec.Validations {
		// Forbidden (403), as the webhook answers a denial; a
		// ValidatingAdmissionPolicy's default reason is Invalid (422).
		nv.validations = append(nv.validations, admissionregistrationv1.Validation{
			Expression: v.Expression, Message: v.Message, MessageExpression: v.MessageExpression,
			Reason: ptr.To(metav1.StatusReasonForbidden),
		})
	}
	for i := range spec.AuditAnnotations {
		nv.auditAnnotations = append(nv.auditAnnotations, *spec.AuditAnnotations[i].DeepCopy())
	}
	return nv
}

// nativeMutationForm is the native form of a MutationPolicy's own fields.
type nativeMutationForm struct {
	base      *nativeBase
	mutations []admissionregistrationv1.Mutation
}

func newNativeMutation(nb *nativeBase, spec *admissionv1alpha1.MutationPolicySpec, compiled []mutation) *nativeMutationForm {
	nm := &nativeMutationForm{base: nb}
	if nb.notExpressible != nil {
		return nm
	}
	if len(spec.AuditAnnotations) > 0 {
		nb.notExpressible = &NotExpressibleError{Field: "spec.auditAnnotations", Why: "a MutatingAdmissionPolicy has no audit annotations"}
		return nm
	}
	if nb.failurePolicy == admissionregistrationv1.Ignore && len(spec.Mutations) > 1 {
		// The API server keeps the mutations before one that fails under
		// Ignore; the webhook applies a policy whole or not at all.
		nb.notExpressible = &NotExpressibleError{Field: "spec.failurePolicy", Why: "under Ignore the API server keeps the mutations before one that fails, where the webhook undoes the whole policy"}
		return nm
	}
	for i := range spec.Mutations {
		mu, err := nativeMutationOf(&spec.Mutations[i], &compiled[i], fmt.Sprintf("spec.mutations[%d]", i))
		if err != nil {
			nb.notExpressible = err
			return nm
		}
		nm.mutations = append(nm.mutations, mu)
	}
	return nm
}

// nativeMutationOf is one mutation as a MutatingAdmissionPolicy's: an
// applyConfiguration as it is, labels and annotations as JSONPatch
// expressions that do exactly what the webhook does.
func nativeMutationOf(in *admissionv1alpha1.Mutation, m *mutation, path string) (admissionregistrationv1.Mutation, *NotExpressibleError) {
	jsonPatch := func(expr string) admissionregistrationv1.Mutation {
		return admissionregistrationv1.Mutation{PatchType: admissionregistrationv1.PatchTypeJSONPatch, JSONPatch: &admissionregistrationv1.JSONPatch{Expression: expr}}
	}
	switch m.kind {
	case mutateApplyConfiguration:
		return admissionregistrationv1.Mutation{PatchType: admissionregistrationv1.PatchTypeApplyConfiguration,
			ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: in.ApplyConfiguration.Expression}}, nil
	case mutateLabels:
		return jsonPatch(metadataPatchExpression("labels", m.entries, m.overwrite)), nil
	case mutateAnnotations:
		return jsonPatch(metadataPatchExpression("annotations", m.entries, m.overwrite)), nil
	case mutateJSONPatch, mutateJSONPatchExpression:
		// The API server's JSONPatcher decodes what a patch makes
		// strictly, into the Go type of a built-in (or aggregated) kind,
		// and answers an internal error, which its dispatcher returns
		// before any failurePolicy, when that fails: a field the kind
		// does not have, a custom resource left without a kind. The
		// webhook's patch is applied as written, such a field dropped
		// when the API server decodes it, and its errors are the
		// policy's, to its failurePolicy. Which kinds a rule's groups
		// hold, and which of those the API server types, is not known
		// here, so neither form runs natively. The label and annotation
		// patches above write strings to string maps only.
		return admissionregistrationv1.Mutation{}, &NotExpressibleError{Field: path + ".jsonPatch", Why: jsonPatchNotNative}
	}
	return admissionregistrationv1.Mutation{}, &NotExpressibleError{Field: path + ".mergePatch",
		Why: "a JSON merge patch (RFC 7386) has no MutatingAdmissionPolicy form; write it as applyConfiguration or jsonPatch"}
}

// jsonPatchNotNative is why a JSON patch, static or computed, stays on the
// webhook.
const jsonPatchNotNative = "the API server decodes a patched object strictly and rejects the request whatever the failurePolicy when that fails " +
	"(a field a built-in kind does not have, a custom resource left without a kind), where the webhook applies the patch as written " +
	"and the API server drops such a field; applyConfiguration runs natively"

// metadataPatchExpression sets entries in metadata.member as the webhook
// does: the map is created when missing, and an existing key keeps its
// value unless overwrite.
func metadataPatchExpression(member string, entries []keyValue, overwrite bool) string {
	m := "object.metadata." + member
	parts := []string{fmt.Sprintf(`(has(%s) ? [] : [JSONPatch{op: "add", path: %s, value: {}}])`, m, celString("/metadata/"+member))}
	for _, kv := range entries {
		op := fmt.Sprintf(`[JSONPatch{op: "add", path: %s, value: %s}]`, celString("/metadata/"+member+"/"+jsonPointerEscape(kv.key)), celString(kv.value))
		if overwrite {
			parts = append(parts, op)
			continue
		}
		parts = append(parts, fmt.Sprintf(`(has(%s) && %s in %s ? [] : %s)`, m, celString(kv.key), m, op))
	}
	return strings.Join(parts, " + ")
}

func jsonPointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// celString is s as a CEL string literal: Go's quoting is valid CEL.
func celString(s string) string { return strconv.Quote(s) }

func celStrings(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = celString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// exemptsExpression is exempts as CEL over a request, for a native
// policy's match conditions. Expiry is not in it: the operator
// regenerates the policy when an exception expires.
func (x *CompiledException) exemptsExpression() string {
	var parts []string
	if len(x.opNames) > 0 {
		parts = append(parts, "request.operation in "+celStrings(x.opNames))
	}
	if len(x.namespaces) > 0 {
		parts = append(parts, "request.namespace in "+celStrings(x.namespaces))
	}
	if len(x.names) > 0 {
		parts = append(parts, "request.name in "+celStrings(x.names))
	}
	if !x.anyoneRequester {
		var who []string
		if len(x.users) > 0 {
			who = append(who, "request.userInfo.username in "+celStrings(x.users))
		}
		if len(x.groups) > 0 {
			who = append(who, "request.userInfo.groups.exists(g, g in "+celStrings(x.groups)+")")
		}
		parts = append(parts, "("+strings.Join(who, " || ")+")")
	}
	if x.objectSelectorSpec != nil {
		parts = append(parts, fmt.Sprintf("((object != null && %s) || (oldObject != null && %s))",
			selectorExpression(x.objectSelectorSpec, "object"), selectorExpression(x.objectSelectorSpec, "oldObject")))
	}
	if len(parts) == 0 {
		return "true"
	}
	return strings.Join(parts, " && ")
}

// selectorExpression is a label selector over obj's labels as CEL, as
// labels.Selector matches: NotIn and DoesNotExist hold for a missing key.
func selectorExpression(sel *metav1.LabelSelector, obj string) string {
	l := obj + ".metadata.labels"
	has := func(k string) string {
		return fmt.Sprintf("(has(%s.metadata) && has(%s) && %s in %s)", obj, l, celString(k), l)
	}
	var parts []string
	keys := make([]string, 0, len(sel.MatchLabels))
	for k := range sel.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("(%s && %s[%s] == %s)", has(k), l, celString(k), celString(sel.MatchLabels[k])))
	}
	for _, r := range sel.MatchExpressions {
		in := fmt.Sprintf("(%s && %s[%s] in %s)", has(r.Key), l, celString(r.Key), celStrings(r.Values))
		switch r.Operator {
		case metav1.LabelSelectorOpIn:
			parts = append(parts, in)
		case metav1.LabelSelectorOpNotIn:
			parts = append(parts, "!"+in)
		case metav1.LabelSelectorOpExists:
			parts = append(parts, has(r.Key))
		case metav1.LabelSelectorOpDoesNotExist:
			parts = append(parts, "!"+has(r.Key))
		}
	}
	if len(parts) == 0 {
		return "true"
	}
	return "(" + strings.Join(parts, " && ") + ")"
}

// RulesOverlap reports whether some request may match a rule of a and a
// rule of b. It errs towards true: "*" in either overlaps anything, a
// subresource wildcard overlaps any subresource or none, and resources of
// the same name overlap whatever their groups and versions.
func RulesOverlap(a, b []admissionregistrationv1.RuleWithOperations) bool {
	for i := range a {
		for j := range b {
			if ruleOverlaps(&a[i], &b[j]) {
				return true
			}
		}
	}
	return false
}

func ruleOverlaps(a, b *admissionregistrationv1.RuleWithOperations) bool {
	ops := func(o []admissionregistrationv1.OperationType) []string {
		out := make([]string, len(o))
		for i := range o {
			out[i] = string(o[i])
		}
		return out
	}
	// Groups and versions are not compared: under matchPolicy Equivalent
	// a request through one is sent as its equivalent in another
	// (extensions/v1beta1 deployments as apps/v1), which both may match.
	if !namesOverlap(ops(a.Operations), ops(b.Operations)) {
		return false
	}
	for _, ra := range a.Resources {
		for _, rb := range b.Resources {
			resA, subA, _ := strings.Cut(ra, "/")
			resB, subB, _ := strings.Cut(rb, "/")
			if (resA == "*" || resB == "*" || resA == resB) && (subA == "*" || subB == "*" || subA == subB) {
				return true
			}
		}
	}
	return false
}

func namesOverlap(a, b []string) bool {
	if slices.Contains(a, "*") || slices.Contains(b, "*") {
		return true
	}
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// RulesCovered reports whether every resource of every rule of want is
// matched by a rule of have for all of its operations, groups and
// versions (have may list them in other rules, as the webhook
// configurations union them).
func RulesCovered(have, want []admissionregistrationv1.RuleWithOperations) bool {
	for _, w := range want {
		for _, op := range w.Operations {
			for _, g := range w.APIGroups {
				for _, v := range w.APIVersions {
					for _, res := range w.Resources {
						if !slices.ContainsFunc(have, func(h admissionregistrationv1.RuleWithOperations) bool {
							return covers(h.Operations, string(op)) && coversName(h.APIGroups, g) && coversName(h.APIVersions, v) && coversResource(h.Resources, res)
						}) {
							return false
						}
					}
				}
			}
		}
	}
	return true
}

func covers(ops []admissionregistrationv1.OperationType, op string) bool {
	return slices.ContainsFunc(ops, func(o admissionregistrationv1.OperationType) bool { return o == "*" || string(o) == op })
}

func coversName(names []string, n string) bool {
	return slices.Contains(names, "*") || slices.Contains(names, n)
}

// coversResource: "*/*" covers everything, "*" every resource without
// its subresources, "pods/*" and "*/status" what they say.
func coversResource(names []string, n string) bool {
	if slices.Contains(names, "*/*") || slices.Contains(names, n) {
		return true
	}
	res, sub, hasSub := strings.Cut(n, "/")
	if !hasSub {
		return res != "*" && slices.Contains(names, "*")
	}
	return res != "*" && slices.Contains(names, res+"/*") || sub != "*" && slices.Contains(names, "*/"+sub)
}
