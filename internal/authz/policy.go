package authz

import (
	"errors"
	"fmt"
	"strings"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/celerr"
	"github.com/portcullis-io/portcullis/internal/fielderr"
)

// KindAccessPolicy is the kind reasons and errors name.
const KindAccessPolicy = "AccessPolicy"

// Wildcards, as RBAC spells them.
const (
	// wildcard matches every verb, API group, resource, namespace or
	// service account of a namespace.
	wildcard = "*"
	// allSubresources is the subresource part of "pods/*".
	allSubresources = "*"
)

// readonlyVerbs is what readonly: true expands to: the API server's own
// definition of a read (authorizer.AttributesRecord.IsReadOnly). proxy is
// not one: it reaches into the workload.
var readonlyVerbs = []string{"get", "list", "watch"}

// Policy is one compiled AccessPolicy. It is immutable once compiled, so
// snapshots share it and a controller may cache it by UID and
// resourceVersion.
type Policy struct {
	// Name of the AccessPolicy; reasons and decision logs name it.
	Name string
	// UID, ResourceVersion and Generation identify the object the policy
	// was compiled from, for caches and status.
	UID             types.UID
	ResourceVersion string
	Generation      int64
	// Effect is Allow or Deny.
	Effect authzv1alpha1.Effect
	// DryRun policies are evaluated and reported, and change no answer.
	DryRun bool

	users             []string // user names, service accounts included
	groups            []string // group names; ServiceAccount "*" is its namespace's group
	rules             []*rule
	namespaceSelector labels.Selector              // nil: no selector
	conditions        *authorizationcel.CELMatcher // nil: no conditions

	// Reasons are built once here rather than per request.
	reason       string // "denied by AccessPolicy ..." or "allowed by ..."
	failedReason string // a Deny whose conditions failed to evaluate

	// err is the configuration error of a policy whose conditions or
	// namespaceSelector failed to compile (its subjects and rules did): it
	// is served as a policy that cannot be evaluated, so a broken Deny
	// denies what it could cover and a broken Allow allows nothing.
	err error
}

// Err is the configuration error of a policy served broken (see Compile),
// nil for one that compiled.
func (p *Policy) Err() error { return p.err }

// Users returns the user names the policy is indexed under, service
// accounts included as system:serviceaccount:NAMESPACE:NAME.
func (p *Policy) Users() []string { return append([]string(nil), p.users...) }

// Groups returns the group names the policy is indexed under; a
// ServiceAccount subject named "*" is the group
// system:serviceaccounts:NAMESPACE.
func (p *Policy) Groups() []string { return append([]string(nil), p.groups...) }

// HasConditions reports whether the policy has CEL conditions, so that
// matching it builds a SubjectAccessReview.
func (p *Policy) HasConditions() bool { return p.conditions != nil }

// rule is one compiled spec.rules entry. Resource rules have apiGroups and
// resources; non-resource rules have urls.
type rule struct {
	verbs         stringSet
	namespaces    stringSet // "*" or omitted: any; "" is cluster-scoped
	resourceNames stringSet // omitted: any
	apiGroups     []string  // ["*"] when the rule lists "*"
	resources     []resourceForm
	urls          []nonResourceURL
}

// subresourceMatch says which subresources a resource form covers.
type subresourceMatch uint8

const (
	// subNone: "pods" covers the resource itself, not its subresources.
	subNone subresourceMatch = iota
	// subEvery: "*" covers the resource and every subresource.
	subEvery
	// subAny: "pods/*" and "*/*" cover any subresource, not the resource.
	subAny
	// subExact: "pods/log" and "*/scale" cover one subresource.
	subExact
)

// resourceForm is one entry of rule.resources. resource is "*" for "*",
// "*/scale" and "*/*"; it is the key the rule is indexed under.
type resourceForm struct {
	resource    string
	match       subresourceMatch
	subresource string
}

func (f *resourceForm) matchesSubresource(sub string) bool {
	switch f.match {
	case subEvery:
		return true
	case subNone:
		return sub == ""
	case subAny:
		return sub != ""
	default:
		return sub == f.subresource
	}
}

// nonResourceURL is one entry of rule.urls: an exact path, or a prefix
// when the rule ended with "*" ("*" alone is the empty prefix).
type nonResourceURL struct {
	path   string
	prefix bool
}

// smallSetSize is the size up to which a stringSet scans a slice instead
// of hashing: for a handful of short strings a scan is faster than a map
// lookup and allocates nothing at compile time.
const smallSetSize = 8

// stringSet is a compiled list of verbs, namespaces or names.
type stringSet struct {
	any  bool
	list []string
	set  map[string]struct{}
}

// newStringSet compiles values. An empty list is any when emptyIsAny;
// "*" is any when starIsAny.
func newStringSet(values []string, emptyIsAny, starIsAny bool) stringSet {
	if len(values) == 0 {
		return stringSet{any: emptyIsAny}
	}
	var s stringSet
	seen := make(map[string]struct{}, len(values))
	for _, v := range values {
		if starIsAny && v == wildcard {
			return stringSet{any: true}
		}
		if _, dup := seen[v]; dup {
			continue
		}
		seen[v] = struct{}{}
		s.list = append(s.list, v)
	}
	if len(s.list) > smallSetSize {
		s.set, s.list = seen, nil
	}
	return s
}

func (s *stringSet) has(v string) bool {
	if s.any {
		return true
	}
	if s.set != nil {
		_, ok := s.set[v]
		return ok
	}
	for _, x := range s.list {
		if x == v {
			return true
		}
	}
	return false
}

// ValidateAccessPolicy reports every error Compile would, for the
// validating webhook: field paths are rooted at "spec", so kubectl shows
// the field at fault.
func ValidateAccessPolicy(compiler authorizationcel.Compiler, p *authzv1alpha1.AccessPolicy) field.ErrorList {
	_, errs := Compile(compiler, p)
	return errs
}

// Compile compiles one AccessPolicy. It checks what the CRD schema cannot
// (wildcard placement, resource and URL syntax, names, combinations that
// could never match) and compiles the namespaceSelector and the CEL
// conditions. It returns every error found, each naming its field under
// "spec", and the policy: nil when it cannot be served (an Allow with an
// error in its subjects or rules, an unknown effect, no subject that
// compiled), else compiled, or broken (Err set) when it has errors but
// must keep failing closed: see the end of Compile.
//
// compiler is the API server's SubjectAccessReview CEL compiler
// (authorizationcel.NewDefaultCompiler); build it once and share it. Its
// environment carries the API server's per-call cost limit, so a condition
// cannot run away on the request path.
func Compile(compiler authorizationcel.Compiler, p *authzv1alpha1.AccessPolicy) (*Policy, field.ErrorList) {
	specPath := field.NewPath("spec")
	if p == nil {
		return nil, field.ErrorList{field.Required(specPath, "no AccessPolicy to compile")}
	}
	spec := &p.Spec
	out := &Policy{
		Name:            p.Name,
		UID:             p.UID,
		ResourceVersion: p.ResourceVersion,
		Generation:      p.Generation,
		Effect:          spec.Effect,
	}
	// structural errors leave unknown whom or what the policy is for, or
	// what it does: such a policy cannot be served at all.
	var structural field.ErrorList

	switch spec.Effect {
	case authzv1alpha1.EffectAllow, authzv1alpha1.EffectDeny:
	default:
		structural = append(structural, field.NotSupported(specPath.Child("effect"), spec.Effect,
			[]authzv1alpha1.Effect{authzv1alpha1.EffectAllow, authzv1alpha1.EffectDeny}))
	}
	switch spec.Enforcement {
	case "", authzv1alpha1.EnforcementEnforce:
	case authzv1alpha1.EnforcementDryRun:
		out.DryRun = true
	default:
		structural = append(structural, field.NotSupported(specPath.Child("enforcement"), spec.Enforcement,
			[]authzv1alpha1.Enforcement{authzv1alpha1.EnforcementEnforce, authzv1alpha1.EnforcementDryRun}))
	}

	structural = append(structural, out.compileSubjects(spec.Subjects, specPath.Child("subjects"))...)
	// An empty selector ({}) selects everything and restricts nothing, as
	// in a webhook's namespaceSelector: only a non-empty one narrows the
	// policy to namespaced requests.
	hasSelector := spec.NamespaceSelector != nil &&
		(len(spec.NamespaceSelector.MatchLabels) > 0 || len(spec.NamespaceSelector.MatchExpressions) > 0)
	structural = append(structural, out.compileRules(spec.Rules, hasSelector, specPath.Child("rules"))...)
	errs := structural
	if hasSelector {
		sel, err := metav1.LabelSelectorAsSelector(spec.NamespaceSelector)
		if err != nil {
			errs = append(errs, field.Invalid(specPath.Child("namespaceSelector"), spec.NamespaceSelector, err.Error()))
		}
		out.namespaceSelector = sel
	}
	errs = append(errs, out.compileConditions(compiler, spec.Conditions, specPath.Child("conditions"))...)

	if len(errs) > 0 {
		servable := len(structural) == 0 ||
			// A Deny is served with the subjects that compiled and its rules
			// widened where they did not: it covers at least what it
			// meant for whom it names. An unknown effect cannot be served,
			// nor a policy none of whose subjects compiled.
			(spec.Effect == authzv1alpha1.EffectDeny && len(out.users)+len(out.groups) > 0)
		if !servable {
			return nil, errs
		}
		// An unknown enforcement is enforced: failing closed.
		// Its subjects and rules are known, its selector or conditions
		// are not: served as a policy that cannot be evaluated. A Deny
		// that worked before an upgrade broke its CEL keeps denying (with
		// the reason): a Deny never fails open; an Allow
		// allows nothing.
		out.err = errs.ToAggregate()
		out.namespaceSelector, out.conditions = nil, nil
		out.buildReasons(nil)
		out.failedReason = out.reason + ": it could not be loaded: " + out.err.Error()
		return out, errs
	}
	out.buildReasons(spec.Conditions)
	return out, nil
}

func (p *Policy) buildReasons(conds []authzv1alpha1.Condition) {
	verb := "allowed"
	if p.Effect == authzv1alpha1.EffectDeny {
		verb = "denied"
	}
	p.reason = fmt.Sprintf("%s by %s %q", verb, KindAccessPolicy, p.Name)
	// Every condition held, so every message explains the decision.
	var msgs []string
	for _, c := range conds {
		if c.Message != "" {
			msgs = append(msgs, c.Message)
		}
	}
	p.failedReason = p.reason + ": its conditions could not be evaluated"
	if len(msgs) > 0 {
		p.reason += ": " + strings.Join(msgs, "; ")
	}
}

func (p *Policy) compileSubjects(subjects []authzv1alpha1.Subject, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(subjects) == 0 {
		return field.ErrorList{field.Required(path, "a policy applies to at least one subject")}
	}
	users, groups := map[string]bool{}, map[string]bool{}
	addUser := func(n string) {
		if !users[n] {
			users[n] = true
			p.users = append(p.users, n)
		}
	}
	addGroup := func(n string) {
		if !groups[n] {
			groups[n] = true
			p.groups = append(p.groups, n)
		}
	}
	for i, s := range subjects {
		sp := path.Index(i)
		if s.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), ""))
		}
		switch s.Kind {
		case authzv1alpha1.SubjectUser, authzv1alpha1.SubjectGroup:
			if s.Namespace != "" {
				errs = append(errs, field.Forbidden(sp.Child("namespace"), "only ServiceAccount subjects have a namespace"))
			}
			if s.Name == "" {
				continue
			}
			if s.Kind == authzv1alpha1.SubjectUser {
				addUser(s.Name)
			} else {
				addGroup(s.Name)
			}
		case authzv1alpha1.SubjectServiceAccount:
			bad := s.Name == ""
			if s.Namespace == "" {
				errs = append(errs, field.Required(sp.Child("namespace"), "a ServiceAccount subject names its namespace"))
				bad = true
			} else {
				for _, msg := range apimachineryvalidation.ValidateNamespaceName(s.Namespace, false) {
					errs = append(errs, field.Invalid(sp.Child("namespace"), s.Namespace, msg))
					bad = true
				}
			}
			if s.Name != "" && s.Name != wildcard {
				for _, msg := range apimachineryvalidation.ValidateServiceAccountName(s.Name, false) {
					errs = append(errs, field.Invalid(sp.Child("name"), s.Name, msg+` (or "*" for every service account of the namespace)`))
					bad = true
				}
			}
			if bad {
				continue
			}
			if s.Name == wildcard {
				addGroup(serviceaccount.MakeNamespaceGroupName(s.Namespace))
			} else {
				addUser(serviceaccount.MakeUsername(s.Namespace, s.Name))
			}
		default:
			errs = append(errs, field.NotSupported(sp.Child("kind"), s.Kind, []authzv1alpha1.SubjectKind{
				authzv1alpha1.SubjectUser, authzv1alpha1.SubjectGroup, authzv1alpha1.SubjectServiceAccount}))
		}
	}
	return errs
}

func (p *Policy) compileRules(rules []authzv1alpha1.Rule, hasSelector bool, path *field.Path) field.ErrorList {
	if len(rules) == 0 {
		return field.ErrorList{field.Required(path, "a policy has at least one rule")}
	}
	var errs field.ErrorList
	for i := range rules {
		r, rerrs := compileRule(&rules[i], hasSelector, path.Index(i))
		errs = append(errs, rerrs...)
		if r == nil && p.Effect == authzv1alpha1.EffectDeny {
			// A Deny's rule that does not compile is widened, not
			// dropped (for the policy served broken, see Compile): each
			// field at fault becomes "*", or the rule everything.
			if r, _ = compileRule(widenRule(&rules[i], path.Index(i), rerrs), hasSelector, path.Index(i)); r == nil {
				r, _ = compileRule(&authzv1alpha1.Rule{APIGroups: []string{wildcard}, Resources: []string{wildcard}, Verbs: []string{wildcard}}, false, path.Index(i))
			}
		}
		if r != nil {
			p.rules = append(p.rules, r)
		}
	}
	return errs
}

// widenRule is in with every field that errs names made as wide as it can
// be ("*", or no resourceNames), for a Deny that must cover at least what
// its rule meant.
func widenRule(in *authzv1alpha1.Rule, path *field.Path, errs field.ErrorList) *authzv1alpha1.Rule {
	out := in.DeepCopy()
	at := func(child string) bool { return fielderr.Under(errs, path.Child(child)) }
	if at("verbs") || at("readonly") {
		out.Verbs, out.Readonly = []string{wildcard}, false
	}
	if at("apiGroups") {
		out.APIGroups = []string{wildcard}
	}
	if at("resources") {
		out.Resources = []string{wildcard}
	}
	if at("resourceNames") {
		out.ResourceNames = nil
	}
	if at("namespaces") {
		out.Namespaces = []string{wildcard}
	}
	if at("nonResourceURLs") {
		out.NonResourceURLs = []string{wildcard}
	}
	return out
}

func compileRule(in *authzv1alpha1.Rule, hasSelector bool, path *field.Path) (*rule, field.ErrorList) {
	var errs field.ErrorList
	nonResource := len(in.NonResourceURLs) > 0
	resource := len(in.Resources) > 0 || len(in.APIGroups) > 0
	switch {
	case nonResource && resource:
		errs = append(errs, field.Forbidden(path.Child("nonResourceURLs"), "a rule has either nonResourceURLs, or apiGroups and resources, not both"))
	case !nonResource && !resource:
		errs = append(errs, field.Required(path, "a rule has either nonResourceURLs, or apiGroups and resources"))
	case resource && len(in.APIGroups) == 0:
		errs = append(errs, field.Required(path.Child("apiGroups"), `required with resources (use [""] for the core group)`))
	case resource && len(in.Resources) == 0:
		errs = append(errs, field.Required(path.Child("resources"), "required with apiGroups"))
	}

	// Verbs.
	switch {
	case len(in.Verbs) == 0 && !in.Readonly:
		errs = append(errs, field.Required(path.Child("verbs"), "set verbs or readonly: true"))
	case len(in.Verbs) > 0 && in.Readonly:
		errs = append(errs, field.Forbidden(path.Child("readonly"), "readonly: true is shorthand for verbs [get, list, watch]: set one or the other"))
	}
	for j, v := range in.Verbs {
		vp := path.Child("verbs").Index(j)
		switch {
		case v == "":
			errs = append(errs, field.Invalid(vp, v, "must not be empty"))
		case v != wildcard && strings.Contains(v, wildcard):
			errs = append(errs, field.Invalid(vp, v, `"*" is a whole verb: it cannot be part of one`))
		case v != strings.ToLower(v):
			errs = append(errs, field.Invalid(vp, v, "verbs are lower case, as the API server sends them"))
		}
	}

	// Resource fields.
	for j, g := range in.APIGroups {
		gp := path.Child("apiGroups").Index(j)
		switch {
		case g != wildcard && strings.Contains(g, wildcard):
			errs = append(errs, field.Invalid(gp, g, `"*" is a whole API group: it cannot be part of one`))
		case strings.Contains(g, "/"):
			errs = append(errs, field.Invalid(gp, g, "an API group has no version: write apps, not apps/v1"))
		case g != strings.ToLower(g):
			// Groups are DNS subdomains: a rule in upper case never matches.
			errs = append(errs, field.Invalid(gp, g, "API groups are lower case, as the API server sends them"))
		}
	}
	forms := make([]resourceForm, 0, len(in.Resources))
	for j, res := range in.Resources {
		f, msg := parseResource(res)
		if msg != "" {
			errs = append(errs, field.Invalid(path.Child("resources").Index(j), res, msg))
			continue
		}
		forms = append(forms, f)
	}
	for j, n := range in.ResourceNames {
		if n == "" {
			errs = append(errs, field.Invalid(path.Child("resourceNames").Index(j), n, "must not be empty"))
		}
	}
	clusterOnly := len(in.Namespaces) > 0
	for j, ns := range in.Namespaces {
		switch ns {
		case wildcard:
			clusterOnly = false
		case "":
		default:
			// Names are not checked as DNS labels: a policy may name a
			// namespace before it exists (the design's own example says
			// projectCaribou). A partial wildcard, though, is a mistake
			// that would never match.
			clusterOnly = false
			if strings.Contains(ns, wildcard) {
				errs = append(errs, field.Invalid(path.Child("namespaces").Index(j), ns,
					`"*" is a whole namespace: it cannot be part of one (select namespaces by label with namespaceSelector)`))
			}
		}
	}

	// Non-resource fields.
	urls := make([]nonResourceURL, 0, len(in.NonResourceURLs))
	for j, u := range in.NonResourceURLs {
		up := path.Child("nonResourceURLs").Index(j)
		switch i := strings.Index(u, wildcard); {
		case u == "":
			errs = append(errs, field.Invalid(up, u, "must not be empty"))
		case u == wildcard:
			urls = append(urls, nonResourceURL{prefix: true})
		case !strings.HasPrefix(u, "/"):
			errs = append(errs, field.Invalid(up, u, `must start with "/" (or be "*" for every path)`))
		case i >= 0 && i != len(u)-1:
			errs = append(errs, field.Invalid(up, u, `"*" is only allowed as the last character, to match a prefix`))
		case i >= 0:
			urls = append(urls, nonResourceURL{path: u[:i], prefix: true})
		default:
			urls = append(urls, nonResourceURL{path: u})
		}
	}
	if nonResource {
		if len(in.Namespaces) > 0 {
			errs = append(errs, field.Forbidden(path.Child("namespaces"), "namespaces do not apply to nonResourceURLs"))
		}
		if len(in.ResourceNames) > 0 {
			errs = append(errs, field.Forbidden(path.Child("resourceNames"), "resourceNames do not apply to nonResourceURLs"))
		}
	}

	// A rule that can never match is refused rather than served: a Deny
	// the author believes in but that never applies is worse than an
	// error at apply time.
	if hasSelector && nonResource {
		errs = append(errs, field.Forbidden(path.Child("nonResourceURLs"),
			"never matches: a policy with a namespaceSelector only matches namespaced requests"))
	}
	if hasSelector && clusterOnly {
		errs = append(errs, field.Forbidden(path.Child("namespaces"),
			`never matches: [""] selects cluster-scoped requests and a policy with a namespaceSelector only matches namespaced ones`))
	}

	if len(errs) > 0 {
		return nil, errs
	}
	verbs := in.Verbs
	if in.Readonly {
		verbs = readonlyVerbs
	}
	r := &rule{
		verbs:         newStringSet(verbs, false, true),
		namespaces:    newStringSet(in.Namespaces, true, true),
		resourceNames: newStringSet(in.ResourceNames, true, false),
		resources:     forms,
		urls:          urls,
	}
	// apiGroups: "*" covers the others, so the rule is indexed once.
	groups := newStringSet(in.APIGroups, false, true)
	switch {
	case groups.any:
		r.apiGroups = []string{wildcard}
	case groups.set != nil:
		for g := range groups.set {
			r.apiGroups = append(r.apiGroups, g)
		}
	default:
		r.apiGroups = groups.list
	}
	if !nonResource {
		r.urls = nil
	}
	return r, nil
}

// parseResource compiles one rules[].resources entry, or says what is
// wrong with it.
func parseResource(s string) (resourceForm, string) {
	if s == "" {
		return resourceForm{}, "must not be empty"
	}
	if s != strings.ToLower(s) {
		return resourceForm{}, "resources are lower-case plurals, as in pods or deployments/scale"
	}
	if s == wildcard {
		return resourceForm{resource: wildcard, match: subEvery}, ""
	}
	res, sub, hasSub := strings.Cut(s, "/")
	switch {
	case res == "":
		return resourceForm{}, `the resource before "/" is missing (use "*/` + sub + `" for any resource)`
	case hasSub && sub == "":
		return resourceForm{}, `the subresource after "/" is missing (use "` + res + `/*" for every subresource)`
	case strings.Contains(sub, "/"):
		return resourceForm{}, "a resource has at most one subresource: RESOURCE/SUBRESOURCE"
	case res != wildcard && strings.Contains(res, wildcard), sub != allSubresources && strings.Contains(sub, wildcard):
		return resourceForm{}, `"*" is a whole resource or subresource name: it cannot be part of one`
	}
	switch {
	case !hasSub:
		return resourceForm{resource: res, match: subNone}, ""
	case sub == allSubresources:
		return resourceForm{resource: res, match: subAny}, ""
	default:
		return resourceForm{resource: res, match: subExact, subresource: sub}, ""
	}
}

// errNoCompiler is reported when a policy has conditions and the caller
// passed no CEL compiler: a wiring bug, not the user's.
var errNoCompiler = errors.New("no CEL compiler to compile conditions with")

func (p *Policy) compileConditions(compiler authorizationcel.Compiler, conds []authzv1alpha1.Condition, path *field.Path) field.ErrorList {
	if len(conds) == 0 {
		return nil
	}
	var (
		errs    field.ErrorList
		results []authorizationcel.CompilationResult
		seen    = make(map[string]bool, len(conds))
		m       = &authorizationcel.CELMatcher{AuthorizerType: KindAccessPolicy, AuthorizerName: p.Name}
	)
	for i, c := range conds {
		ep := path.Index(i).Child("expression")
		switch {
		case strings.TrimSpace(c.Expression) == "":
			errs = append(errs, field.Required(ep, "a condition is a CEL expression over request"))
			continue
		case seen[c.Expression]:
			errs = append(errs, field.Duplicate(ep, c.Expression))
			continue
		case compiler == nil:
			errs = append(errs, field.InternalError(ep, errNoCompiler))
			continue
		}
		seen[c.Expression] = true
		res, err := compiler.CompileCELExpression(&authorizationcel.SubjectAccessReviewMatchCondition{Expression: c.Expression})
		if err != nil {
			errs = append(errs, celerr.FieldError(ep, c.Expression, err))
			continue
		}
		results = append(results, res)
		m.UsesFieldSelector = m.UsesFieldSelector || res.UsesFieldSelector
		m.UsesLabelSelector = m.UsesLabelSelector || res.UsesLabelSelector
	}
	if len(errs) > 0 {
		return errs
	}
	m.CompilationResults = results
	p.conditions = m
	return nil
}
