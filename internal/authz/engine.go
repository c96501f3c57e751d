package authz

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// ReasonNotReady is the reason of the answer given before the first full
// sync. The answer is NoOpinion, so RBAC alone decides while policies load:
// a Deny policy is not yet enforced, but nothing is allowed that RBAC would
// not allow.
const ReasonNotReady = "policies are still loading"

// What a DryRun policy would have done, in DryRunResult.Would.
const (
	WouldAllow = "allow"
	WouldDeny  = "deny"
)

// candidatesInline is how many matching policies a decision holds without
// allocating. A request matches a handful of policies at most in any sane
// configuration; more still works, on the heap.
const candidatesInline = 16

// NamespaceLister gives the labels of namespaces, for namespaceSelector.
// The operator backs it with an informer cache; it must not block.
type NamespaceLister interface {
	// Labels returns the labels of the namespace name, and false when the
	// namespace is unknown (a policy with a namespaceSelector then cannot
	// be evaluated: a Deny denies, an Allow does not allow).
	Labels(name string) (labels.Set, bool)
}

// ResourceScopes says whether a resource is namespaced, so that a Deny
// limited to some namespaces covers a request across all of them only for
// resources that live in namespaces. The operator backs it with discovery,
// refreshed away from the request path; it must not block.
type ResourceScopes interface {
	// Scope reports whether group/resource is namespaced, and whether it
	// is known at all.
	Scope(group, resource string) (namespaced, known bool)
}

// ResourceScopeMap is a ResourceScopes over a fixed map from group and
// resource to whether it is namespaced, for tests and tools; what it lacks
// is unknown.
type ResourceScopeMap map[schema.GroupResource]bool

// Scope implements ResourceScopes.
func (m ResourceScopeMap) Scope(group, resource string) (namespaced, known bool) {
	namespaced, known = m[schema.GroupResource{Group: group, Resource: resource}]
	return namespaced, known
}

// NamespaceLabels is a NamespaceLister over a fixed map, for tests and
// tools.
type NamespaceLabels map[string]labels.Set

// Labels implements NamespaceLister.
func (m NamespaceLabels) Labels(name string) (labels.Set, bool) {
	l, ok := m[name]
	return l, ok
}

// Snapshot is one immutable, indexed view of every AccessPolicy. It is
// never modified after it is published; a change builds a new one.
type Snapshot struct {
	// Generation counts published snapshots, for logs and metrics.
	Generation uint64
	// Ready is false until the controllers have compiled every policy that
	// existed at start-up; until then every answer is NoOpinion.
	Ready bool

	loaded, failed int
	index          index
}

// Counts reports how many policies the snapshot serves and how many exist
// but failed to compile.
func (s *Snapshot) Counts() (loaded, failed int) { return s.loaded, s.failed }

// DryRunResult is what one DryRun policy would have done.
type DryRunResult struct {
	// Policy is the AccessPolicy's name.
	Policy string
	// Would is WouldAllow or WouldDeny.
	Would string
}

// PolicyError is a policy that matched the request but whose
// namespaceSelector or conditions could not be evaluated.
type PolicyError struct {
	// Policy is the AccessPolicy's name.
	Policy string
	// DryRun is true for a DryRun policy: its error is reported and does
	// not reach Authorize's error.
	DryRun bool
	Err    error
}

// Error implements error; the message names the policy.
func (e PolicyError) Error() string {
	if e.DryRun {
		return fmt.Sprintf("%s %q (DryRun): %v", KindAccessPolicy, e.Policy, e.Err)
	}
	return fmt.Sprintf("%s %q: %v", KindAccessPolicy, e.Policy, e.Err)
}

// Unwrap returns the evaluation error.
func (e PolicyError) Unwrap() error { return e.Err }

// Result is one decision as data, for the decision log.
type Result struct {
	// Decision is always set; its zero value is DecisionDeny, so never
	// read a zero Result as "no decision".
	Decision authorizer.Decision
	// Reason names the deciding policy, e.g. `denied by AccessPolicy
	// "no-ns-delete"`, followed by its condition messages; empty when no
	// enforced policy matched.
	Reason string
	// Policy is the name of the deciding AccessPolicy; empty for NoOpinion.
	Policy string
	// DryRun lists, by policy name, what matching DryRun policies would
	// have done.
	DryRun []DryRunResult
	// Errors lists the policies that matched but could not be evaluated.
	Errors []PolicyError
}

// Err aggregates the errors of enforced policies, the error Authorize
// returns; nil when there are none. DryRun errors are left out: a DryRun
// policy changes no answer, and an error changes how the API server treats
// a NoOpinion.
func (r *Result) Err() error {
	var errs []error
	for _, e := range r.Errors {
		if !e.DryRun {
			errs = append(errs, e)
		}
	}
	return utilerrors.NewAggregate(errs)
}

// Engine decides requests against the current Snapshot. It implements
// authorizer.Authorizer.
type Engine struct {
	snap       atomic.Pointer[Snapshot]
	namespaces NamespaceLister
	scopes     ResourceScopes
}

var _ authorizer.Authorizer = (*Engine)(nil)

// NewEngine returns an Engine that is not ready: it answers NoOpinion
// until a ready Snapshot is published. namespaces serves namespaceSelector;
// with nil, a policy with a namespaceSelector fails to evaluate (an
// enforced Deny then denies, with the error). scopes says which resources
// are namespaced; with nil, every resource is taken to be.
func NewEngine(namespaces NamespaceLister, scopes ResourceScopes) *Engine {
	e := &Engine{namespaces: namespaces, scopes: scopes}
	e.snap.Store(&Snapshot{})
	return e
}

// Snapshot returns the snapshot in use.
func (e *Engine) Snapshot() *Snapshot { return e.snap.Load() }

// Ready reports whether the engine serves a complete snapshot.
func (e *Engine) Ready() bool { return e.snap.Load().Ready }

// Authorize implements authorizer.Authorizer: Deny if an enforced Deny
// policy matches, else Allow if an enforced Allow policy matches, else
// NoOpinion. The error aggregates the enforced policies that matched but
// could not be evaluated; it comes with whatever decision was still
// reached (a Deny that cannot be evaluated denies). Through the webhook it
// is the review's evaluationError, which the API server logs; in-process,
// the API server ignores it with Allow and answers 500 rather than 403
// when the final answer is Deny or NoOpinion.
func (e *Engine) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	r := e.Evaluate(ctx, a)
	return r.Decision, r.Reason, r.Err()
}

// ConditionsAwareAuthorize implements authorizer.Authorizer. The engine
// is not conditions-aware: its answer is Authorize's.
func (e *Engine) ConditionsAwareAuthorize(ctx context.Context, a authorizer.Attributes) authorizer.ConditionsAwareDecision {
	return authorizer.ConditionsAwareDecisionFromParts(e.Authorize(ctx, a))
}

// EvaluateConditions implements authorizer.Authorizer. The engine never
// returns conditional decisions, so it fails closed, as the interface asks.
func (e *Engine) EvaluateConditions(context.Context, authorizer.ConditionsAwareDecision, authorizer.ConditionsData) (authorizer.Decision, string, error) {
	return authorizer.DecisionDeny, "", authorizer.ErrorConditionEvaluationNotSupported
}

// Evaluate decides a request and returns the decision as data.
//
// Matching policies are taken in name order. Every DryRun policy that
// matches is evaluated and reported. Enforced Deny policies are evaluated
// until one denies (a Deny whose conditions fail to evaluate denies);
// enforced Allow policies are evaluated only when nothing denied, until
// one allows (an Allow that fails to evaluate does not allow). So the
// reason always names the first deciding policy by name, and errors are
// reported for the policies evaluated.
func (e *Engine) Evaluate(ctx context.Context, a authorizer.Attributes) Result {
	s := e.snap.Load()
	if !s.Ready {
		return Result{Decision: authorizer.DecisionNoOpinion, Reason: ReasonNotReady}
	}
	r := newRequest(a, e.scopes)
	var (
		name   string
		groups []string
	)
	if u := a.GetUser(); u != nil {
		name, groups = u.GetName(), u.GetGroups()
	}
	var inline [candidatesInline]*Policy
	matched := s.index.collect(name, groups, &r, inline[:0])
	res := Result{Decision: authorizer.DecisionNoOpinion}
	if len(matched) == 0 {
		return res
	}
	slices.SortFunc(matched, func(x, y *Policy) int { return strings.Compare(x.Name, y.Name) })

	ev := evaluator{ctx: ctx, attrs: a, namespaces: e.namespaces, sar: reviewFrom(ctx)}
	var deny *Policy
	denyFailed := false
	for _, p := range matched {
		if !p.DryRun && (p.Effect == authzv1alpha1.EffectAllow || deny != nil) {
			continue // allows come second; one deny is enough
		}
		ok, err := ev.applies(p, &r)
		if err != nil {
			res.Errors = append(res.Errors, PolicyError{Policy: p.Name, DryRun: p.DryRun, Err: err})
		}
		denies := p.Effect == authzv1alpha1.EffectDeny && (ok || err != nil)
		switch {
		case p.DryRun && denies:
			res.DryRun = append(res.DryRun, DryRunResult{Policy: p.Name, Would: WouldDeny})
		case p.DryRun && ok:
			res.DryRun = append(res.DryRun, DryRunResult{Policy: p.Name, Would: WouldAllow})
		case denies:
			deny, denyFailed = p, !ok
		}
	}
	if deny != nil {
		res.Decision, res.Policy, res.Reason = authorizer.DecisionDeny, deny.Name, deny.reason
		if denyFailed {
			res.Reason = deny.failedReason
		}
		if why := deny.widenedBecause(&r); why != "" {
			res.Reason += " (" + why + ")"
		}
		return res
	}
	for _, p := range matched {
		if p.DryRun || p.Effect != authzv1alpha1.EffectAllow {
			continue
		}
		ok, err := ev.applies(p, &r)
		if err != nil {
			res.Errors = append(res.Errors, PolicyError{Policy: p.Name, Err: err})
		}
		if ok {
			res.Decision, res.Policy, res.Reason = authorizer.DecisionAllow, p.Name, p.reason
			break
		}
	}
	return res
}

// request is a request's attributes, read once.
type request struct {
	isResource                                                   bool
	verb, namespace, apiGroup, resource, subresource, name, path string

	// collection: a list, watch or deletecollection, whose answer holds
	// every object it selects.
	collection bool
	// allNamespaces: a request or review of a namespaced resource across
	// every namespace (namespace "" in the review: a collection, or a
	// review of any other verb in any namespace), or of Namespace objects
	// across the cluster, each of which is in itself.
	allNamespaces bool
	// clusterScoped: a request without a namespace of a resource known to
	// be cluster-scoped, the only ones an Allow for namespace "" matches.
	clusterScoped bool
	// names and namespaces are the values a collection's field selector
	// restricts metadata.name and metadata.namespace to (equality
	// requirements), and for Namespace objects the names, which are their
	// namespaces; nil when nothing restricts them.
	names, namespaces []string
}

// virtualResources are what the API server authorizes that no discovery
// lists: impersonation's users, groups, uids and userextras, and
// certificate signers. Each is cluster-scoped: a request of one has no
// namespace, and is not one across every namespace.
var virtualResources = map[schema.GroupResource]bool{
	{Group: "", Resource: "users"}:                           true,
	{Group: "", Resource: "groups"}:                          true,
	{Group: "authentication.k8s.io", Resource: "uids"}:       true,
	{Group: "authentication.k8s.io", Resource: "userextras"}: true,
	{Group: "certificates.k8s.io", Resource: "signers"}:      true,
}

// acrossNamespaces reports whether r, which has no namespace, is of every
// namespace. A collection (list, watch, deletecollection, or a review of
// every verb) is, unless the resource is known to be cluster-scoped: one
// discovery has not seen yet (a CRD installed a moment ago) is taken as
// namespaced, so that a Deny errs on the side of covering. Another verb
// the API server sends without a namespace only for a cluster-scoped
// resource, so it is of every namespace only when the resource is known
// to be namespaced (a review: kubectl auth can-i --all-namespaces, an
// escalation check), or is every resource. The virtual resources are
// known cluster-scoped.
func acrossNamespaces(scopes ResourceScopes, r *request) bool {
	if virtualResources[schema.GroupResource{Group: r.apiGroup, Resource: r.resource}] {
		return false
	}
	if r.apiGroup == wildcard || r.resource == wildcard {
		return true
	}
	collection := (collectionVerbs[r.verb] && r.subresource == "") || r.verb == wildcard
	if scopes == nil {
		return collection
	}
	namespaced, known := scopes.Scope(r.apiGroup, r.resource)
	if collection {
		return namespaced || !known
	}
	return namespaced && known
}

// clusterScoped reports whether r, which has no namespace, is of a
// cluster-scoped resource: one of the virtual resources, or one discovery
// lists as not namespaced. Without discovery (the offline tools), as the
// API server sends: a request that is not a collection, and Namespace
// objects. A resource discovery has not seen yet is not: an Allow for
// namespace "" does not allow a list across namespaces of a CRD installed
// a moment ago.
func clusterScoped(scopes ResourceScopes, r *request) bool {
	switch {
	case virtualResources[schema.GroupResource{Group: r.apiGroup, Resource: r.resource}]:
		return true
	case r.apiGroup == wildcard || r.resource == wildcard:
		return false
	case scopes == nil:
		return (r.apiGroup == "" && r.resource == "namespaces") || !acrossNamespaces(nil, r)
	}
	namespaced, known := scopes.Scope(r.apiGroup, r.resource)
	return known && !namespaced
}

// collectionVerbs answer with every object they select.
var collectionVerbs = map[string]bool{"list": true, "watch": true, "deletecollection": true}

func newRequest(a authorizer.Attributes, scopes ResourceScopes) request {
	if !a.IsResourceRequest() {
		return request{verb: a.GetVerb(), path: a.GetPath()}
	}
	r := request{
		isResource:  true,
		verb:        a.GetVerb(),
		namespace:   a.GetNamespace(),
		apiGroup:    a.GetAPIGroup(),
		resource:    a.GetResource(),
		subresource: a.GetSubresource(),
		name:        a.GetName(),
	}
	// The API server gives a request of Namespace object prod namespace
	// prod; one without a namespace is of every Namespace object, or of
	// the one it names (a review), except a create, which is of a new one.
	namespaceObjects := r.namespace == "" && r.apiGroup == "" && r.resource == "namespaces" && r.verb != "create"
	r.allNamespaces = r.namespace == "" && (namespaceObjects || acrossNamespaces(scopes, &r))
	r.clusterScoped = r.namespace == "" && clusterScoped(scopes, &r)
	if namespaceObjects && r.name != "" {
		r.namespaces = []string{r.name}
	}
	if !collectionVerbs[r.verb] || r.subresource != "" {
		return r
	}
	r.collection = true
	// A selector that cannot be read restricts nothing: a Deny then
	// covers the request.
	if reqs, err := a.GetFieldSelector(); err == nil {
		for _, q := range reqs {
			if q.Operator != selection.Equals && q.Operator != selection.DoubleEquals {
				continue
			}
			switch q.Field {
			case "metadata.name":
				r.names = append(r.names, q.Value)
				if namespaceObjects {
					r.namespaces = append(r.namespaces, q.Value)
				}
			case "metadata.namespace":
				if !namespaceObjects {
					r.namespaces = append(r.namespaces, q.Value)
				}
			}
		}
	}
	return r
}

// anyIn reports whether a restriction (nil: none) leaves a value in set.
func anyIn(restriction []string, set *stringSet) bool {
	if restriction == nil {
		return true
	}
	for _, v := range restriction {
		if set.has(v) {
			return true
		}
	}
	return false
}

// addCandidate appends p to the policies with a matching rule unless it
// is there already. The list is passed and returned by value so that its
// inline backing array stays on the caller's stack.
func addCandidate(list []*Policy, p *Policy) []*Policy {
	for _, q := range list {
		if q == p {
			return list
		}
	}
	return append(list, p)
}

// errNoNamespaceLister is a wiring bug: the engine cannot tell whether a
// namespace matches a selector, so the policy is not evaluated.
var errNoNamespaceLister = errors.New("namespaceSelector: the engine has no namespace lister")

// evaluator checks the policy-level parts of candidates: namespaceSelector
// and conditions. It builds the SubjectAccessReview for conditions at most
// once per request, and only if a candidate has conditions.
type evaluator struct {
	ctx        context.Context
	attrs      authorizer.Attributes
	namespaces NamespaceLister
	sar        *authorizationv1.SubjectAccessReview
}

// applies reports whether p, which has a matching rule, applies to the
// request; an error means it could not tell.
func (ev *evaluator) applies(p *Policy, r *request) (bool, error) {
	if p.err != nil {
		return false, fmt.Errorf("not loaded: %w", p.err)
	}
	if p.namespaceSelector != nil {
		ok, err := ev.selects(p, r)
		if !ok || err != nil {
			return false, err
		}
	}
	if p.conditions == nil {
		return true, nil
	}
	if ev.sar == nil {
		ev.sar = SARFromAttributes(ev.attrs)
	}
	return p.conditions.Eval(ev.ctx, ev.sar)
}

// selects reports whether p's namespaceSelector selects the request's
// namespace. Cluster-scoped and non-resource requests have none, so they
// are never selected; a Deny's selector covers a collection across every
// namespace (unless a field selector keeps it to namespaces it does not
// select), since the answer includes the selected ones. A namespace the
// cache does not know cannot be judged: an error, so a Deny denies and an
// Allow does not allow.
func (ev *evaluator) selects(p *Policy, r *request) (bool, error) {
	if !r.isResource {
		return false, nil
	}
	namespaces := []string{r.namespace}
	if r.namespace == "" {
		if p.Effect != authzv1alpha1.EffectDeny || !r.allNamespaces {
			return false, nil
		}
		if r.namespaces == nil {
			return true, nil
		}
		namespaces = r.namespaces
	}
	if ev.namespaces == nil {
		return false, errNoNamespaceLister
	}
	for _, ns := range namespaces {
		l, ok := ev.namespaces.Labels(ns)
		if !ok {
			return false, fmt.Errorf("namespaceSelector: namespace %q is not in the operator's namespace cache", ns)
		}
		if p.namespaceSelector.Matches(l) {
			return true, nil
		}
	}
	return false, nil
}
