package admission

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/authz"
)

// KindPolicyException names PolicyExceptions in results and logs.
const KindPolicyException = "PolicyException"

// CompiledException is one compiled PolicyException. It is immutable.
type CompiledException struct {
	// Name of the PolicyException; results name it.
	Name string
	// UID, ResourceVersion and Generation identify the object.
	UID             types.UID
	ResourceVersion string
	Generation      int64
	// Reason is spec.reason.
	Reason string
	// ExpiresAt is spec.expiresAt; zero when it does not expire.
	ExpiresAt time.Time

	policies       []admissionv1alpha1.PolicyReference
	namespaces     []string
	names          []string
	objectSelector labels.Selector // nil: any
	ops            operations      // 0: any
	// opNames and objectSelectorSpec are the same as written, for the
	// exception's CEL form (exemptsExpression).
	opNames            []string
	objectSelectorSpec *metav1.LabelSelector
	users              []string // users, service accounts included
	groups             []string
	anyoneRequester    bool // no users, groups or service accounts given
}

// Exemption is one policy a request was exempted from, and by which
// exception.
type Exemption struct {
	Kind, Policy, Exception string
}

// CompileException compiles a PolicyException, or returns every error,
// each naming its field under "spec".
func CompileException(p *admissionv1alpha1.PolicyException) (*CompiledException, field.ErrorList) {
	sp := field.NewPath("spec")
	if p == nil {
		return nil, field.ErrorList{field.Required(sp, "no PolicyException to compile")}
	}
	out := &CompiledException{Name: p.Name, UID: p.UID, ResourceVersion: p.ResourceVersion, Generation: p.Generation, Reason: p.Spec.Reason}
	if p.Spec.ExpiresAt != nil {
		out.ExpiresAt = p.Spec.ExpiresAt.Time
	}
	var errs field.ErrorList
	pp := sp.Child("policies")
	if len(p.Spec.Policies) == 0 {
		errs = append(errs, field.Required(pp, "an exception names at least one policy"))
	}
	for i, ref := range p.Spec.Policies {
		ip := pp.Index(i)
		switch ref.Kind {
		case KindValidationPolicy, KindMutationPolicy:
		default:
			errs = append(errs, field.NotSupported(ip.Child("kind"), ref.Kind, []string{KindValidationPolicy, KindMutationPolicy}))
		}
		if ref.Name == "" {
			errs = append(errs, field.Required(ip.Child("name"), "the policy's name"))
		}
		if slices.Contains(p.Spec.Policies[:i], ref) {
			errs = append(errs, field.Duplicate(ip, ref))
		}
		out.policies = append(out.policies, ref)
	}
	if p.Spec.Reason == "" {
		errs = append(errs, field.Required(sp.Child("reason"), "say why the exception exists"))
	}
	m := &p.Spec.Match
	mp := sp.Child("match")
	for i, ns := range m.Namespaces {
		for _, msg := range apimachineryvalidation.ValidateNamespaceName(ns, false) {
			errs = append(errs, field.Invalid(mp.Child("namespaces").Index(i), ns, msg))
		}
	}
	out.namespaces = slices.Clone(m.Namespaces)
	out.names = slices.Clone(m.Names)
	var ferrs field.ErrorList
	out.objectSelector, ferrs = compileSelector(m.ObjectSelector, mp.Child("objectSelector"))
	if out.objectSelector != nil {
		out.objectSelectorSpec = m.ObjectSelector.DeepCopy()
	}
	errs = append(errs, ferrs...)
	for i, o := range m.Operations {
		bit := operationBit(admissionv1.Operation(o))
		if bit == 0 {
			errs = append(errs, field.NotSupported(mp.Child("operations").Index(i), o, []string{"CREATE", "UPDATE", "DELETE", "CONNECT"}))
		}
		out.ops |= bit
		out.opNames = append(out.opNames, string(o))
	}
	out.users = slices.Clone(m.Users)
	for i, sa := range m.ServiceAccounts {
		if sa.Namespace == "" || sa.Name == "" {
			errs = append(errs, field.Required(mp.Child("serviceAccounts").Index(i), "namespace and name"))
			continue
		}
		out.users = append(out.users, "system:serviceaccount:"+sa.Namespace+":"+sa.Name)
	}
	out.groups = slices.Clone(m.Groups)
	out.anyoneRequester = len(out.users) == 0 && len(out.groups) == 0
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// Grants is what writing the exception needs: the right to update every
// policy it names, as if editing them.
func (x *CompiledException) Grants() []authz.Grant {
	out := make([]authz.Grant, 0, len(x.policies))
	for _, ref := range x.policies {
		resource := "validationpolicies"
		if ref.Kind == KindMutationPolicy {
			resource = "mutationpolicies"
		}
		out = append(out, authz.Grant{Resource: &authorizationv1.ResourceAttributes{
			Verb: "update", Group: admissionv1alpha1.GroupVersion.Group, Resource: resource, Name: ref.Name,
		}})
	}
	return out
}

// exempts reports whether the exception exempts r at now. An error (the
// object cannot be decoded for its selector) exempts nothing.
func (x *CompiledException) exempts(r *Request, now time.Time) bool {
	if !x.ExpiresAt.IsZero() && !now.Before(x.ExpiresAt) {
		return false
	}
	if x.ops != 0 && x.ops&r.op == 0 {
		return false
	}
	if len(x.namespaces) > 0 && (r.req.Namespace == "" || !slices.Contains(x.namespaces, r.req.Namespace)) {
		return false
	}
	if len(x.names) > 0 && !slices.Contains(x.names, r.req.Name) {
		return false
	}
	if !x.anyoneRequester {
		u := r.req.UserInfo
		if !slices.Contains(x.users, u.Username) && !slices.ContainsFunc(u.Groups, func(g string) bool { return slices.Contains(x.groups, g) }) {
			return false
		}
	}
	if x.objectSelector != nil {
		if err := r.decodeMetadata(); err != nil {
			return false
		}
		if !(r.object != nil && x.objectSelector.Matches(objectLabels(r.object)) ||
			r.oldObject != nil && x.objectSelector.Matches(objectLabels(r.oldObject))) {
			return false
		}
	}
	return true
}

// exceptionIndex is the served exceptions by the policy they name. It is
// immutable once published.
type exceptionIndex map[admissionv1alpha1.PolicyReference][]*CompiledException

// exempting returns the first exception that exempts r from the policy, or
// nil.
func (ix exceptionIndex) exempting(kind, policy string, r *Request, now time.Time) *CompiledException {
	for _, x := range ix[admissionv1alpha1.PolicyReference{Kind: kind, Name: policy}] {
		if x.exempts(r, now) {
			return x
		}
	}
	return nil
}

// nextExpiry is the earliest expiry after now of the exceptions in ix,
// zero when none expires later.
func (ix exceptionIndex) nextExpiry(now time.Time) time.Time {
	var next time.Time
	for _, xs := range ix {
		for _, x := range xs {
			if x.ExpiresAt.After(now) && (next.IsZero() || x.ExpiresAt.Before(next)) {
				next = x.ExpiresAt
			}
		}
	}
	return next
}

// exceptions is what both engines read: the index, swapped whole.
type exceptions struct {
	index atomic.Pointer[exceptionIndex]
	// version counts the indexes published.
	version atomic.Uint64
}

func (e *exceptions) load() exceptionIndex {
	if p := e.index.Load(); p != nil {
		return *p
	}
	return nil
}

// ExceptionRegistry collects compiled PolicyExceptions from the controller
// and publishes their index to the engines. Only served exceptions are
// set; one that failed to compile, is not approved or has expired is set
// nil, counted as seen and serves nothing.
type ExceptionRegistry struct {
	targets []*exceptions

	mu      sync.Mutex
	entries map[string]*CompiledException
	ready   bool
}

// NewExceptionRegistry returns a registry that publishes to the engines.
func NewExceptionRegistry(m *MutationEngine, v *ValidationEngine) *ExceptionRegistry {
	return &ExceptionRegistry{targets: []*exceptions{&m.exceptions, &v.exceptions}, entries: map[string]*CompiledException{}}
}

// Set records the exception name as processed (x nil: it serves nothing)
// and publishes the index.
func (r *ExceptionRegistry) Set(name string, x *CompiledException) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries[name] = x
	r.publishLocked()
}

// Delete forgets the exception name.
func (r *ExceptionRegistry) Delete(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.entries, name)
	r.publishLocked()
}

// Has reports whether the exception name has been processed.
func (r *ExceptionRegistry) Has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.entries[name]
	return ok
}

// MarkReady publishes the first index. Before it, no exception exempts
// anything: a request then meets every policy, which fails closed.
func (r *ExceptionRegistry) MarkReady() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = true
	r.publishLocked()
}

// Counts reports how many exceptions serve and how many do not.
func (r *ExceptionRegistry) Counts() (served, notServed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.entries {
		if x != nil {
			served++
		} else {
			notServed++
		}
	}
	return served, notServed
}

func (r *ExceptionRegistry) publishLocked() {
	if !r.ready {
		return
	}
	ix := exceptionIndex{}
	for _, x := range r.entries {
		if x == nil {
			continue
		}
		for _, ref := range x.policies {
			ix[ref] = append(ix[ref], x)
		}
	}
	for _, xs := range ix {
		sort.Slice(xs, func(i, j int) bool { return xs[i].Name < xs[j].Name })
	}
	for _, t := range r.targets {
		t.index.Store(&ix)
		t.version.Add(1)
	}
}

// For returns the served exceptions that name the policy, in name order,
// leaving out those expired at now; next is the earliest expiry of those
// kept (zero when none expires), when the answer changes.
func (r *ExceptionRegistry) For(kind, policy string, now time.Time) (out []*CompiledException, next time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref := admissionv1alpha1.PolicyReference{Kind: kind, Name: policy}
	for _, x := range r.entries {
		if x == nil || !slices.Contains(x.policies, ref) {
			continue
		}
		if !x.ExpiresAt.IsZero() {
			if !now.Before(x.ExpiresAt) {
				continue
			}
			if next.IsZero() || x.ExpiresAt.Before(next) {
				next = x.ExpiresAt
			}
		}
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, next
}
