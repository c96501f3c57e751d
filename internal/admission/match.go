package admission

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	celtypes "github.com/google/cel-go/common/types"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/fielderr"
)

// All is the wildcard of API groups, versions, resources and operations,
// as webhook rules spell it.
const All = "*"

// operations is a set of admission operations.
type operations uint8

const (
	opCreate operations = 1 << iota
	opUpdate
	opDelete
	opConnect

	opAll = opCreate | opUpdate | opDelete | opConnect
	// opMutable is what a MutationPolicy can act on: requests that carry
	// an object being written.
	opMutable = opCreate | opUpdate
)

// operationBit returns the bit of an operation, 0 for one we do not know
// (which no rule matches).
func operationBit(op admissionv1.Operation) operations {
	switch op {
	case admissionv1.Create:
		return opCreate
	case admissionv1.Update:
		return opUpdate
	case admissionv1.Delete:
		return opDelete
	case admissionv1.Connect:
		return opConnect
	}
	return 0
}

// supportedOperations are the values spec.match.resources[].operations
// takes.
var supportedOperations = []admissionregistrationv1.OperationType{
	admissionregistrationv1.Create, admissionregistrationv1.Update,
	admissionregistrationv1.Delete, admissionregistrationv1.Connect, admissionregistrationv1.OperationAll,
}

// rule is one compiled spec.match.resources entry. It matches a request
// exactly as the API server matches a webhook rule (its predicates/rules
// package) against the request's resource and subresource, which is what
// a webhook configuration with matchPolicy Exact would have matched, and
// what the API server converted the request to with matchPolicy
// Equivalent.
type rule struct {
	ops       operations
	groups    []string // nil: any
	versions  []string // nil: any
	resources []resourceForm
}

// resourceForm is one entry of rule.resources, split at its "/". Either
// part may be "*". As in webhook rules, "*" is every resource but none of
// their subresources, "pods/*" is pods and every subresource of pods,
// "*/scale" every scale subresource and "*/*" everything.
type resourceForm struct {
	resource, subresource string
}

func (f resourceForm) matches(resource, subresource string) bool {
	return (f.resource == All || f.resource == resource) &&
		(f.subresource == All || f.subresource == subresource)
}

func (ru *rule) matches(op operations, res *metav1.GroupVersionResource, subresource string) bool {
	if ru.ops&op == 0 {
		return false
	}
	if ru.groups != nil && !slices.Contains(ru.groups, res.Group) {
		return false
	}
	if ru.versions != nil && !slices.Contains(ru.versions, res.Version) {
		return false
	}
	for _, f := range ru.resources {
		if f.matches(res.Resource, subresource) {
			return true
		}
	}
	return false
}

// matcher is a compiled spec.match.
type matcher struct {
	rules []rule
	// exact is matchPolicy Exact: rules match the resource as requested,
	// not as the API server converted it for the webhook.
	exact    bool
	excluded []string
	// namespaceSelector is nil when it selects everything; it never
	// excludes cluster-scoped objects other than namespaces.
	namespaceSelector labels.Selector
	// objectSelector is nil when it selects everything.
	objectSelector labels.Selector
	conditions     []*program // nil: no conditions
	conditionNames []string
	// webhookRules are the rules for a webhook configuration.
	webhookRules []admissionregistrationv1.RuleWithOperations
}

// matches reports whether a policy with this match applies to r, checking
// the cheap parts first: rules and excludedNamespaces, then
// namespaceSelector (a cache lookup), objectSelector (decodes the
// objects), then the CEL conditions. An error means the policy could not
// tell.
func (m *matcher) matches(ctx context.Context, r *Request) (bool, error) {
	ok, err := m.matchesStatic(r)
	if !ok || err != nil {
		return ok, err
	}
	return m.holds(ctx, r)
}

// holds evaluates the conditions, true when there are none.
func (m *matcher) holds(ctx context.Context, r *Request) (bool, error) {
	if m.conditions == nil {
		return true, nil
	}
	return m.conditionsHold(ctx, r)
}

// matchesStatic is matches without the CEL conditions, which a policy
// with parameters evaluates once per parameter object.
func (m *matcher) matchesStatic(r *Request) (bool, error) {
	if !m.matchesRules(r) || slices.Contains(m.excluded, r.nsName) {
		return false, nil
	}
	if m.namespaceSelector != nil {
		l, ok, err := r.namespaceLabels()
		if err != nil {
			return false, fmt.Errorf("namespaceSelector: %w", err)
		}
		// A cluster-scoped object other than a namespace has no namespace:
		// like a webhook's namespaceSelector, the selector does not apply
		// to it and it matches (upstream predicates/namespace/matcher.go).
		if ok && !m.namespaceSelector.Matches(l) {
			return false, nil
		}
	}
	if m.objectSelector != nil {
		if err := r.decodeMetadata(); err != nil {
			return false, err
		}
		// As for webhooks: the new object or the old one (DELETE has only
		// the old one).
		if !(r.object != nil && m.objectSelector.Matches(objectLabels(r.object)) ||
			r.oldObject != nil && m.objectSelector.Matches(objectLabels(r.oldObject))) {
			return false, nil
		}
	}
	return true, nil
}

func (m *matcher) matchesRules(r *Request) bool {
	res, sub := &r.req.Resource, r.req.SubResource
	if m.exact && r.req.RequestResource != nil {
		// With matchPolicy Equivalent in the webhook configuration, the
		// API server sends a request made through an equivalent version
		// converted to the version a rule names, and says in
		// requestResource what was asked for.
		res, sub = r.req.RequestResource, r.req.RequestSubResource
	}
	for i := range m.rules {
		if m.rules[i].matches(r.op, res, sub) {
			return true
		}
	}
	return false
}

// conditionsHold evaluates the conditions as the API server evaluates a
// webhook's matchConditions: any false condition means no match, even if
// another failed to evaluate; otherwise any error is an error.
func (m *matcher) conditionsHold(ctx context.Context, r *Request) (bool, error) {
	r.budgetFor(ConditionsCostBudget)
	results, err := r.evaluate(ctx, m.conditions, r.results[:0])
	r.results = results
	if err != nil {
		return false, fmt.Errorf("conditions: %w", err)
	}
	var errs []error
	for i := range results {
		switch {
		case results[i].Error != nil:
			errs = append(errs, fmt.Errorf("condition %q: %w", m.conditionNames[i], results[i].Error))
		case results[i].EvalResult != celtypes.True:
			return false, nil
		}
	}
	if len(errs) > 0 {
		return false, utilerrors.NewAggregate(errs)
	}
	return true, nil
}

// rulesCopy returns a deep copy of the webhook rules, so callers cannot
// change a compiled policy.
func (m *matcher) rulesCopy() []admissionregistrationv1.RuleWithOperations {
	out := make([]admissionregistrationv1.RuleWithOperations, len(m.webhookRules))
	for i := range m.webhookRules {
		m.webhookRules[i].DeepCopyInto(&out[i])
	}
	return out
}

// compileMatch compiles spec.match (path). mutating restricts operations
// to what a MutationPolicy acts on.
func compileMatch(sc *scope, in *admissionv1alpha1.Match, path *field.Path, mutating bool) (*matcher, field.ErrorList) {
	m := &matcher{}
	var errs field.ErrorList

	rp := path.Child("resources")
	if len(in.Resources) == 0 {
		errs = append(errs, field.Required(rp, "a policy matches at least one resource rule"))
	}
	for i := range in.Resources {
		ip := rp.Index(i)
		ru, wr, rerrs := compileRule(&in.Resources[i], ip, mutating)
		errs = append(errs, rerrs...)
		if len(rerrs) > 0 {
			// A rule that does not compile is widened, not dropped: each
			// field at fault becomes "*", so that what the policy matches
			// (for its failure policy, when it is served broken) covers at
			// least what the rule meant.
			if ru, wr, rerrs = compileRule(widenRule(&in.Resources[i], ip, rerrs), ip, mutating); len(rerrs) > 0 {
				ru, wr, _ = compileRule(&admissionv1alpha1.ResourceRule{
					APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{"*/*"},
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll},
				}, ip, mutating)
			}
		}
		m.rules = append(m.rules, ru)
		m.webhookRules = append(m.webhookRules, wr)
	}

	ep := path.Child("excludedNamespaces")
	for i, ns := range in.ExcludedNamespaces {
		for _, msg := range apimachineryvalidation.ValidateNamespaceName(ns, false) {
			errs = append(errs, field.Invalid(ep.Index(i), ns, msg))
		}
		if slices.Contains(in.ExcludedNamespaces[:i], ns) {
			errs = append(errs, field.Duplicate(ep.Index(i), ns))
			continue
		}
		m.excluded = append(m.excluded, ns)
	}

	var ferrs field.ErrorList
	m.namespaceSelector, ferrs = compileSelector(in.NamespaceSelector, path.Child("namespaceSelector"))
	errs = append(errs, ferrs...)
	m.objectSelector, ferrs = compileSelector(in.ObjectSelector, path.Child("objectSelector"))
	errs = append(errs, ferrs...)

	switch {
	case in.MatchPolicy == nil || *in.MatchPolicy == admissionregistrationv1.Equivalent:
	case *in.MatchPolicy == admissionregistrationv1.Exact:
		m.exact = true
	default:
		errs = append(errs, field.NotSupported(path.Child("matchPolicy"), *in.MatchPolicy,
			[]admissionregistrationv1.MatchPolicyType{admissionregistrationv1.Exact, admissionregistrationv1.Equivalent}))
	}
	errs = append(errs, m.compileConditions(sc, in.Conditions, path.Child("conditions"))...)
	// With errors, m holds what compiled: the rules, excluded namespaces
	// and selectors that are valid, and no conditions when one is not. It
	// matches at least what the whole match would, so that a policy that
	// failed to compile still applies its failurePolicy to every request
	// it could have been for.
	return m, errs
}

// widenRule is in with every field that errs names replaced by "*"
// ("*/*" for resources): the widest rule that still keeps its valid
// fields.
func widenRule(in *admissionv1alpha1.ResourceRule, path *field.Path, errs field.ErrorList) *admissionv1alpha1.ResourceRule {
	out := in.DeepCopy()
	at := func(child string) bool { return fielderr.Under(errs, path.Child(child)) }
	if at("apiGroups") {
		out.APIGroups = []string{"*"}
	}
	if at("apiVersions") {
		out.APIVersions = []string{"*"}
	}
	if at("resources") {
		out.Resources = []string{"*/*"}
	}
	if at("operations") {
		out.Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}
	}
	return out
}

// compileSelector compiles a label selector; nil when it selects
// everything.
func compileSelector(in *metav1.LabelSelector, path *field.Path) (labels.Selector, field.ErrorList) {
	if in == nil {
		return nil, nil
	}
	if errs := metav1validation.ValidateLabelSelector(in, metav1validation.LabelSelectorValidationOptions{}, path); len(errs) > 0 {
		return nil, errs
	}
	sel, err := metav1.LabelSelectorAsSelector(in)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(path, in, err.Error())}
	}
	if sel.Empty() {
		return nil, nil
	}
	return sel, nil
}

func (m *matcher) compileConditions(sc *scope, conds []admissionv1alpha1.MatchCondition, path *field.Path) field.ErrorList {
	if len(conds) == 0 {
		return nil
	}
	var (
		errs    field.ErrorList
		results = make([]*program, 0, len(conds))
		names   = make([]string, 0, len(conds))
	)
	for i, cond := range conds {
		cp := path.Index(i)
		np := cp.Child("name")
		switch {
		case cond.Name == "":
			errs = append(errs, field.Required(np, "a condition is named, so that errors can say which one failed"))
		case slices.Contains(names, cond.Name):
			errs = append(errs, field.Duplicate(np, cond.Name))
		default:
			// The API server's rule for matchConditions names.
			for _, msg := range validation.IsQualifiedName(cond.Name) {
				errs = append(errs, field.Invalid(np, cond.Name, msg))
			}
		}
		names = append(names, cond.Name)
		res, ferr := sc.compile(cp.Child("expression"), cond.Expression, celVariables, cel.BoolType)
		if ferr != nil {
			errs = append(errs, ferr)
			continue
		}
		results = append(results, res)
	}
	if len(errs) > 0 {
		return errs
	}
	m.conditions = results
	m.conditionNames = names
	return nil
}

// compileRule checks one resource rule the way the API server validates a
// webhook rule, so that the rules a webhook configuration is narrowed to
// are always accepted, and compiles it. It also returns the rule for a
// webhook configuration.
func compileRule(in *admissionv1alpha1.ResourceRule, path *field.Path, mutating bool) (rule, admissionregistrationv1.RuleWithOperations, field.ErrorList) {
	var (
		errs field.ErrorList
		out  rule
	)
	out.groups, errs = compileNames(in.APIGroups, path.Child("apiGroups"), "API group", true, errs)
	out.versions, errs = compileNames(in.APIVersions, path.Child("apiVersions"), "API version", false, errs)

	op := path.Child("operations")
	if len(in.Operations) == 0 {
		errs = append(errs, field.Required(op, "CREATE, UPDATE, DELETE, CONNECT or *"))
	}
	if len(in.Operations) > 1 && slices.Contains(in.Operations, admissionregistrationv1.OperationAll) {
		errs = append(errs, field.Invalid(op, in.Operations, "if '*' is present, must not specify other operations"))
	}
	for i, o := range in.Operations {
		bit := operationBit(admissionv1.Operation(o))
		switch {
		case o == admissionregistrationv1.OperationAll:
			bit = opAll
		case bit == 0:
			errs = append(errs, field.NotSupported(op.Index(i), o, supportedOperations))
		case mutating && bit&opMutable == 0:
			errs = append(errs, field.Forbidden(op.Index(i),
				"a MutationPolicy changes the object of CREATE and UPDATE requests: "+string(o)+" requests have no object for it to change"))
		}
		out.ops |= bit
	}
	if mutating {
		out.ops &= opMutable
	}

	out.resources, errs = compileResources(in.Resources, path.Child("resources"), errs)

	wr := admissionregistrationv1.RuleWithOperations{
		Operations: slices.Clone(in.Operations),
		Rule: admissionregistrationv1.Rule{
			APIGroups:   slices.Clone(in.APIGroups),
			APIVersions: slices.Clone(in.APIVersions),
			Resources:   slices.Clone(in.Resources),
		},
	}
	if mutating && out.ops == opMutable {
		// "*" in a MutationPolicy: the mutating webhook need not be called
		// for deletes and connects.
		wr.Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	}
	return out, wr, errs
}

// compileNames checks a list of API groups or versions and returns it, or
// nil when it holds "*". Groups may be "" (the core group); versions not.
func compileNames(names []string, path *field.Path, what string, emptyOK bool, errs field.ErrorList) ([]string, field.ErrorList) {
	if len(names) == 0 {
		hint := ""
		if emptyOK {
			hint = `("" is the core group, "*" every group)`
		}
		return nil, append(errs, field.Required(path, hint))
	}
	wildcard := slices.Contains(names, All)
	if wildcard && len(names) > 1 {
		errs = append(errs, field.Invalid(path, names, "if '*' is present, must not specify other "+what+"s"))
	}
	for i, n := range names {
		switch {
		case n == "" && !emptyOK:
			errs = append(errs, field.Required(path.Index(i), ""))
		case n != All && strings.Contains(n, All):
			errs = append(errs, field.Invalid(path.Index(i), n, `"*" is a whole `+what+`: it cannot be part of one`))
		case strings.Contains(n, "/"):
			errs = append(errs, field.Invalid(path.Index(i), n, "an "+what+` has no "/": write apps and v1, not apps/v1`))
		}
	}
	if wildcard {
		return nil, errs
	}
	return slices.Clone(names), errs
}

// compileResources checks resource names as the API server checks a
// webhook rule's (plus what could never match: upper case, partial
// wildcards, more than one "/") and splits them.
func compileResources(resources []string, path *field.Path, errs field.ErrorList) ([]resourceForm, field.ErrorList) {
	if len(resources) == 0 {
		return nil, append(errs, field.Required(path, `"pods", "pods/status", "pods/*", "*" or "*/*"`))
	}
	var (
		forms             []resourceForm
		wildcardSubs      = map[string]bool{} // x of "x/*"
		wildcardResources = map[string]bool{} // y of "*/y"
		hasDouble         bool                // "*/*"
		hasSingle         bool                // "*"
		hasPlain          bool                // "x"
	)
	for i, s := range resources {
		ip := path.Index(i)
		res, sub, hasSub := strings.Cut(s, "/")
		var msg string
		switch {
		case s == "":
			errs = append(errs, field.Required(ip, ""))
			continue
		case s != strings.ToLower(s):
			msg = "resources are lower-case plurals, as in pods or deployments/scale"
		case res == "":
			msg = `the resource before "/" is missing (use "*/` + sub + `" for any resource)`
		case hasSub && sub == "":
			msg = `the subresource after "/" is missing (use "` + res + `/*" for every subresource)`
		case strings.Contains(sub, "/"):
			msg = "a resource has at most one subresource: RESOURCE/SUBRESOURCE"
		case res != All && strings.Contains(res, All), sub != All && strings.Contains(sub, All):
			msg = `"*" is a whole resource or subresource name: it cannot be part of one`
		}
		if msg != "" {
			errs = append(errs, field.Invalid(ip, s, msg))
			continue
		}
		forms = append(forms, resourceForm{resource: res, subresource: sub})
		switch {
		case s == "*/*":
			hasDouble = true
		case s == All:
			hasSingle = true
		case !hasSub:
			hasPlain = true
		}
		if sub == All {
			wildcardSubs[res] = true
		}
		if res == All {
			wildcardResources[sub] = true
		}
	}
	// The API server's cross-checks, regardless of order.
	for i, f := range forms {
		if f.subresource == "" || f.subresource == All && f.resource == All {
			continue
		}
		s := f.resource + "/" + f.subresource
		if f.subresource != All && wildcardSubs[f.resource] {
			errs = append(errs, field.Invalid(path.Index(i), s, fmt.Sprintf("if '%s/*' is present, must not specify %s", f.resource, s)))
		}
		if f.resource != All && wildcardResources[f.subresource] {
			errs = append(errs, field.Invalid(path.Index(i), s, fmt.Sprintf("if '*/%s' is present, must not specify %s", f.subresource, s)))
		}
	}
	if hasDouble && len(resources) > 1 {
		errs = append(errs, field.Invalid(path, resources, "if '*/*' is present, must not specify other resources"))
	}
	if hasSingle && hasPlain {
		errs = append(errs, field.Invalid(path, resources, "if '*' is present, must not specify other resources without subresources"))
	}
	return forms, errs
}

// unionRules returns the rules of every policy once each, in a stable
// order, for a webhook configuration.
func unionRules(sets ...[]admissionregistrationv1.RuleWithOperations) []admissionregistrationv1.RuleWithOperations {
	seen := map[string]bool{}
	var out []admissionregistrationv1.RuleWithOperations
	for _, set := range sets {
		for i := range set {
			r := &set[i]
			key := ruleKey(r)
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, *r.DeepCopy())
		}
	}
	slices.SortFunc(out, func(a, b admissionregistrationv1.RuleWithOperations) int {
		return strings.Compare(ruleKey(&a), ruleKey(&b))
	})
	return out
}

func ruleKey(r *admissionregistrationv1.RuleWithOperations) string {
	ops := make([]string, len(r.Operations))
	for i, o := range r.Operations {
		ops[i] = string(o)
	}
	// NUL separates the lists, so that the core group ("") sorts first.
	return strings.Join(r.APIGroups, ",") + "\x00" + strings.Join(r.APIVersions, ",") + "\x00" +
		strings.Join(r.Resources, ",") + "\x00" + strings.Join(ops, ",")
}
