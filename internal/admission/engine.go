package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync/atomic"

	"gomodules.xyz/jsonpatch/v2"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
)

// MutationSnapshot is one immutable, compiled view of every
// MutationPolicy. It is never modified after it is published; a change
// builds a new one.
type MutationSnapshot struct {
	// Generation counts published snapshots, for logs and metrics.
	Generation uint64
	// Ready is false until the controllers have compiled every policy that
	// existed at start-up; until then every request gets ErrNotReady.
	Ready bool

	policies []*CompiledMutation // in the order they apply
	failed   int
	rules    []admissionregistrationv1.RuleWithOperations
}

// Counts reports how many policies the snapshot serves and how many exist
// but failed to compile.
func (s *MutationSnapshot) Counts() (loaded, failed int) { return len(s.policies), s.failed }

// Rules returns the union of the served policies' rules, for the mutating
// webhook configuration: the API server need not call the webhook for
// anything else.
func (s *MutationSnapshot) Rules() []admissionregistrationv1.RuleWithOperations {
	return unionRules(s.rules)
}

// MutationEngine mutates requests with the current MutationSnapshot.
type MutationEngine struct {
	snap       atomic.Pointer[MutationSnapshot]
	namespaces NamespaceLister
}

// NewMutationEngine returns an engine that is not ready: every request
// gets ErrNotReady until a MutationRegistry marks it ready. namespaces
// serves namespaceSelector and namespaceObject.
func NewMutationEngine(namespaces NamespaceLister) *MutationEngine {
	e := &MutationEngine{namespaces: namespaces}
	e.snap.Store(&MutationSnapshot{})
	return e
}

// Snapshot returns the snapshot in use.
func (e *MutationEngine) Snapshot() *MutationSnapshot { return e.snap.Load() }

// Ready reports whether the engine serves a complete snapshot.
func (e *MutationEngine) Ready() bool { return e.snap.Load().Ready }

// Mutate applies every matching MutationPolicy to the request's object,
// in order (spec.order, then name), each seeing the object as the ones
// before it left it, and returns one JSON patch from the object as sent to
// the object as mutated. Only CREATE and UPDATE requests are mutated:
// others carry no object being written.
//
// A policy that cannot be evaluated or applied is rolled back and
// reported in Errors; the others still apply, but a handler that sees Err
// fails the call and sends no patch.
func (e *MutationEngine) Mutate(ctx context.Context, req *admissionv1.AdmissionRequest) MutateResult {
	s := e.snap.Load()
	if !s.Ready {
		return MutateResult{NotReady: true}
	}
	var res MutateResult
	if req == nil || operationBit(req.Operation)&opMutable == 0 || len(s.policies) == 0 {
		return res
	}
	r := NewRequest(req, e.namespaces)
	var log undoLog
	for _, p := range s.policies {
		ok, err := p.Matches(ctx, r)
		if err != nil {
			res.addError(p, err)
			continue
		}
		if !ok {
			continue
		}
		res.Matched = append(res.Matched, p.Name)
		if err := r.decode(); err != nil {
			res.addError(p, err)
			continue
		}
		if r.object == nil {
			res.addError(p, fmt.Errorf("the %s request has no object to mutate", req.Operation))
			continue
		}
		log = log[:0]
		if err := p.apply(r.object.Object, &log); err != nil {
			res.addError(p, err)
			continue
		}
		if len(log) > 0 {
			res.Changed = append(res.Changed, p.Name)
			r.objectChanged()
		}
	}
	if len(res.Changed) == 0 {
		return res
	}
	mutated, err := json.Marshal(r.object.Object)
	if err == nil {
		res.Patch, err = jsonpatch.CreatePatch(req.Object.Raw, mutated)
	}
	if err != nil {
		res.Patch = nil
		res.Errors = append(res.Errors, PolicyError{Kind: KindMutationPolicy, Index: -1, Err: fmt.Errorf("computing the patch: %w", err)})
	}
	if len(res.Patch) == 0 {
		res.Patch = nil
	}
	return res
}

// ValidationSnapshot is one immutable, compiled view of every
// ValidationPolicy. It is never modified after it is published; a change
// builds a new one.
type ValidationSnapshot struct {
	// Generation counts published snapshots, for logs and metrics.
	Generation uint64
	// Ready is false until the controllers have compiled every policy that
	// existed at start-up; until then every request gets ErrNotReady.
	Ready bool

	policies []*CompiledValidation // by name
	failed   int
	rules    []admissionregistrationv1.RuleWithOperations
}

// Counts reports how many policies the snapshot serves and how many exist
// but failed to compile.
func (s *ValidationSnapshot) Counts() (loaded, failed int) { return len(s.policies), s.failed }

// Rules returns the union of the served policies' rules, for the
// validating webhook configuration.
func (s *ValidationSnapshot) Rules() []admissionregistrationv1.RuleWithOperations {
	return unionRules(s.rules)
}

// ValidationEngine validates requests against the current
// ValidationSnapshot.
type ValidationEngine struct {
	snap       atomic.Pointer[ValidationSnapshot]
	namespaces NamespaceLister
}

// NewValidationEngine returns an engine that is not ready: every request
// gets ErrNotReady until a ValidationRegistry marks it ready. namespaces
// serves namespaceSelector and namespaceObject.
func NewValidationEngine(namespaces NamespaceLister) *ValidationEngine {
	e := &ValidationEngine{namespaces: namespaces}
	e.snap.Store(&ValidationSnapshot{})
	return e
}

// Snapshot returns the snapshot in use.
func (e *ValidationEngine) Snapshot() *ValidationSnapshot { return e.snap.Load() }

// Ready reports whether the engine serves a complete snapshot.
func (e *ValidationEngine) Ready() bool { return e.snap.Load().Ready }

// Validate evaluates every matching ValidationPolicy, in name order, and
// every validation in each, and returns what failed as data: the handler
// denies when there are Denials, returns Warnings as warnings and Audits
// as audit annotations, and fails the call on Err.
func (e *ValidationEngine) Validate(ctx context.Context, req *admissionv1.AdmissionRequest) ValidateResult {
	s := e.snap.Load()
	if !s.Ready {
		return ValidateResult{NotReady: true}
	}
	var res ValidateResult
	if req == nil || len(s.policies) == 0 {
		return res
	}
	r := NewRequest(req, e.namespaces)
	for _, p := range s.policies {
		ok, err := p.Matches(ctx, r)
		if err != nil {
			res.addError(p, -1, err)
			continue
		}
		if !ok {
			continue
		}
		res.Matched = append(res.Matched, p.Name)
		p.evaluate(ctx, r, &res)
	}
	return res
}

// publish stores a ready snapshot of served, for the MutationRegistry.
func (e *MutationEngine) publish(generation uint64, served []*CompiledMutation, failed int) {
	sortMutations(served)
	s := &MutationSnapshot{Generation: generation, Ready: true, policies: served, failed: failed}
	for _, p := range served {
		s.rules = append(s.rules, p.match.webhookRules...)
	}
	s.rules = unionRules(s.rules)
	e.snap.Store(s)
}

// publish stores a ready snapshot of served, for the ValidationRegistry.
func (e *ValidationEngine) publish(generation uint64, served []*CompiledValidation, failed int) {
	sort.Slice(served, func(i, j int) bool { return served[i].Name < served[j].Name })
	s := &ValidationSnapshot{Generation: generation, Ready: true, policies: served, failed: failed}
	for _, p := range served {
		s.rules = append(s.rules, p.match.webhookRules...)
	}
	s.rules = unionRules(s.rules)
	e.snap.Store(s)
}
