package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
	"time"

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

	policies []*CompiledMutation // in the order they apply, broken ones included
	loaded   int                 // policies that compiled
	failed   int
	rules    []admissionregistrationv1.RuleWithOperations
}

// Counts reports how many policies the snapshot serves compiled and how
// many failed to compile (and apply only their failure policy).
func (s *MutationSnapshot) Counts() (loaded, failed int) { return s.loaded, s.failed }

// Rules returns the union of the served policies' rules, broken ones
// included (their failure policy applies), for the mutating webhook
// configuration: the API server need not call the webhook for anything
// else.
func (s *MutationSnapshot) Rules() []admissionregistrationv1.RuleWithOperations {
	return unionRules(s.rules)
}

// MutationEngine mutates requests with the current MutationSnapshot.
type MutationEngine struct {
	snap       atomic.Pointer[MutationSnapshot]
	types      TypeConverters
	params     ParamSource
	exceptions exceptions
	namespaces NamespaceLister
	// now is the clock for exceptions' expiresAt; time.Now when nil.
	now func() time.Time
}

// NewMutationEngine returns an engine that is not ready: every request
// gets ErrNotReady until a MutationRegistry marks it ready. namespaces
// serves namespaceSelector and namespaceObject.
func NewMutationEngine(namespaces NamespaceLister) *MutationEngine {
	e := &MutationEngine{namespaces: namespaces, types: BuiltinTypeConverters{}}
	e.snap.Store(&MutationSnapshot{})
	return e
}

// UseTypeConverters sets the schemas applyConfiguration mutations merge
// under and the objects JSON and merge patches leave are checked against
// (BuiltinTypeConverters by default); call it before serving.
func (e *MutationEngine) UseTypeConverters(t TypeConverters) { e.types = t }

// UseParams sets where policies with a paramKind find their parameter
// objects; call it before serving.
func (e *MutationEngine) UseParams(src ParamSource) { e.params = src }

// Snapshot returns the snapshot in use.
func (e *MutationEngine) Snapshot() *MutationSnapshot { return e.snap.Load() }

// Ready reports whether the engine serves a complete snapshot.
func (e *MutationEngine) Ready() bool { return e.snap.Load().Ready }

// maxMutationPasses bounds the passes Mutate makes over the policies to
// reach an object they no longer change (see Mutate).
const maxMutationPasses = 3

// Mutate applies every matching MutationPolicy to the request's object,
// in order (spec.order, then name), each seeing the object as the ones
// before it left it, and returns one JSON patch from the object as sent to
// the object as mutated. Only CREATE and UPDATE requests are mutated:
// others carry no object being written.
//
// The result is idempotent, as the API server's reinvocation needs: the
// policies are applied again, in order, to what they produced, until a
// pass changes nothing (a policy that reads what a later one writes needs
// the second pass); one still changing the object after maxMutationPasses
// is an error of that policy, and so is one that fails when applied again
// to what it produced (an unguarded RFC 6902 remove, say): it is not
// idempotent, and the API server's reinvocation of the webhook would fail
// it too. Under Ignore, one still changing the object is skipped whole:
// the policies are applied again to the object as sent without it, as
// keeping what it did on the earlier passes would leave an object that
// applying the policies again changes. Those under Fail still changing it
// then reject the request.
//
// A policy that cannot be evaluated or applied is rolled back and reported
// in Errors, handled by its own failure policy (see MutateResult); the
// others still apply. So is one that leaves the object with a value its
// kind's schema refuses, which the API server could not decode
// (schemacheck.go).
func (e *MutationEngine) Mutate(ctx context.Context, req *admissionv1.AdmissionRequest) MutateResult {
	s := e.snap.Load()
	if !s.Ready {
		return MutateResult{NotReady: true}
	}
	if req == nil || operationBit(req.Operation)&opMutable == 0 || len(s.policies) == 0 {
		return MutateResult{}
	}
	// Each time round skips at least one more policy, so this ends.
	var skip map[string]error
	for {
		res, unsettled := e.mutate(ctx, s, req, skip)
		if len(unsettled) == 0 {
			return res
		}
		if skip == nil {
			skip = make(map[string]error, len(unsettled))
		}
		for _, p := range unsettled {
			skip[p.Policy] = p.Err
		}
	}
}

// mutate is Mutate's work, the policies named in skip skipped with their
// error. unsettled are the errors of the Ignore policies that still
// changed the object on the last pass, when there are any: the result,
// which keeps their changes, is then not the answer, and Mutate applies
// the policies again without them.
func (e *MutationEngine) mutate(ctx context.Context, s *MutationSnapshot, req *admissionv1.AdmissionRequest, skip map[string]error) (res MutateResult, unsettled []PolicyError) {
	r := newRequest(ctx, req, e.namespaces)
	r.types = e.types
	exempt, now := e.exceptions.load(), clock(e.now)
	var log, passLog undoLog // a policy's writes, and the pass's
	var written journal
	var fit schemaCheck
	for pass := 1; pass <= maxMutationPasses; pass++ {
		passLog = passLog[:0]
		// Errors of Ignore policies are those of the last pass: one that reads what a later one writes is skipped
		// on the first and applies on the second, as the API server's
		// reinvocation would apply it. An error of a Fail policy is
		// final, as there: the request is rejected at once.
		res.Errors = res.Errors[:0]
		res.annotations = nil
		var changed []*CompiledMutation
	policies:
		for _, p := range s.policies {
			if err, ok := skip[p.Name]; ok {
				res.matched(p.Name)
				res.addError(p, err) // an Ignore policy's
				continue
			}
			ok, err := p.match.matchesStatic(r)
			if err != nil {
				if res.addError(p, err) {
					break policies
				}
				continue
			}
			if !ok {
				continue
			}
			if x := exempt.exempting(KindMutationPolicy, p.Name, r, now); x != nil {
				if !slices.ContainsFunc(res.Exempted, func(ex Exemption) bool { return ex.Policy == p.Name }) {
					res.Exempted = append(res.Exempted, Exemption{Kind: KindMutationPolicy, Policy: p.Name, Exception: x.Name})
				}
				continue
			}
			if p.err != nil {
				res.matched(p.Name)
				if res.addError(p, fmt.Errorf("not loaded: %w", p.err)) {
					break policies
				}
				continue
			}
			if err := p.decode(r); err != nil {
				if res.addError(p, err) {
					break policies
				}
				continue
			}
			if r.object == nil {
				if res.addError(p, fmt.Errorf("the %s request has no object to mutate", req.Operation)) {
					break policies
				}
				continue
			}
			objs, err := p.params.collect(e.params, r)
			if err != nil {
				res.matched(p.Name)
				if res.addError(p, err) {
					break policies
				}
				continue
			}
			log = log[:0]
			// The policy's annotations count only if it applies whole.
			var annotations annotationValues
			// Once per parameter object, as the API server applies a
			// policy once per parameter of its binding; the conditions
			// too, each seeing what the one before changed.
			for _, obj := range objs {
				r.setParams(obj)
				ok, err := p.match.holds(ctx, r)
				if err == nil && !ok {
					continue
				}
				res.matched(p.Name)
				if err == nil {
					err = p.apply(ctx, r, &log)
					if err != nil && pass > 1 && slices.Contains(res.Changed, p.Name) {
						err = fmt.Errorf("%w (applied again to the object it produced, as the API server may reinvoke it: a mutation must be idempotent; guard it with a test operation or a match condition)", err)
					}
				}
				if err == nil {
					evaluateAnnotations(ctx, r, p.annotations, &annotations, func(e error) {
						if err == nil {
							err = e
						}
					})
				}
				if err != nil {
					// A policy applies whole or not at all: what it did
					// with the parameters before is undone too.
					if len(log) > 0 {
						log.rollback(0)
						r.objectChanged()
					}
					r.setParams(nil)
					if res.addError(p, err) {
						break policies
					}
					continue policies
				}
			}
			r.setParams(nil)
			// What the API server could not decode is this policy's
			// error, not the whole request's (schemacheck.go).
			if len(log) > 0 && p.writesValues {
				if err := fit.check(r, log); err != nil {
					log.rollback(0)
					r.objectChanged()
					if res.addError(p, err) {
						break policies
					}
					continue
				}
			}
			res.annotations.merge(annotations)
			if len(log) > 0 {
				changed = append(changed, p)
				written.commit(log)
				if pass > 1 {
					passLog = append(passLog, log...)
				}
			}
		}
		for _, p := range changed {
			if !slices.Contains(res.Changed, p.Name) {
				res.Changed = append(res.Changed, p.Name)
			}
		}
		if len(changed) == 0 || res.Rejection() != "" {
			break
		}
		// Policies that overwrite each other change the object on every
		// pass and still leave it as it was: the pass is what counts. The
		// object before the pass is had by undoing the pass's writes (and
		// making them again), so a pass that writes nothing, the usual
		// second one, encodes nothing.
		if pass > 1 {
			same, err := passLeftObjectAsItWas(r.object.Object, passLog)
			if err != nil {
				res.Errors = append(res.Errors, PolicyError{Kind: KindMutationPolicy, Index: -1, Err: fmt.Errorf("encoding the object: %w", err)})
				return res, nil
			}
			if same {
				break
			}
		}
		if pass == maxMutationPasses {
			for _, p := range changed {
				if !res.addError(p, fmt.Errorf("changes the object again on each of %d passes over the policies, so applying them again would not leave it as it is", maxMutationPasses)) {
					unsettled = append(unsettled, res.Errors[len(res.Errors)-1])
				}
			}
			if len(unsettled) > 0 {
				// Those under Fail may settle without them.
				return res, unsettled
			}
		}
	}
	if len(res.Changed) == 0 {
		return res, nil
	}
	var err error
	if written.unknown {
		var mutated []byte
		if err = r.decode(); err != nil { // a partial object, completed
			err = fmt.Errorf("encoding the object: %w", err)
		} else if mutated, err = json.Marshal(r.object.Object); err == nil {
			res.Patch, err = jsonpatch.CreatePatch(req.Object.Raw, mutated)
		}
	} else {
		// Only labels and annotations were set: the patch is what was set.
		res.Patch = written.patch()
	}
	if err != nil {
		res.Patch = nil
		res.Errors = append(res.Errors, PolicyError{Kind: KindMutationPolicy, Index: -1, Err: fmt.Errorf("computing the patch: %w", err)})
	}
	if len(res.Patch) == 0 {
		res.Patch = nil
	}
	return res, nil
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

	policies []*CompiledValidation // by name, broken ones included
	loaded   int                   // policies that compiled
	failed   int
	rules    []admissionregistrationv1.RuleWithOperations
}

// Counts reports how many policies the snapshot serves compiled and how
// many failed to compile (and apply only their failure policy).
func (s *ValidationSnapshot) Counts() (loaded, failed int) { return s.loaded, s.failed }

// Rules returns the union of the served policies' rules, for the
// validating webhook configuration.
func (s *ValidationSnapshot) Rules() []admissionregistrationv1.RuleWithOperations {
	return unionRules(s.rules)
}

// ValidationEngine validates requests against the current
// ValidationSnapshot.
type ValidationEngine struct {
	snap       atomic.Pointer[ValidationSnapshot]
	params     ParamSource
	exceptions exceptions
	namespaces NamespaceLister
	// now is the clock for exceptions' expiresAt; time.Now when nil.
	now func() time.Time
}

// NewValidationEngine returns an engine that is not ready: every request
// gets ErrNotReady until a ValidationRegistry marks it ready. namespaces
// serves namespaceSelector and namespaceObject.
func NewValidationEngine(namespaces NamespaceLister) *ValidationEngine {
	e := &ValidationEngine{namespaces: namespaces}
	e.snap.Store(&ValidationSnapshot{})
	return e
}

// UseParams sets where policies with a paramKind find their parameter
// objects; call it before serving. Without it, such a policy with a
// paramRef is an error of its own.
func (e *ValidationEngine) UseParams(src ParamSource) { e.params = src }

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
	r := newRequest(ctx, req, e.namespaces)
	exempt, now := e.exceptions.load(), clock(e.now)
	for _, p := range s.policies {
		ok, err := p.match.matchesStatic(r)
		if err != nil {
			res.addError(p, -1, err)
			continue
		}
		if !ok {
			continue
		}
		if x := exempt.exempting(KindValidationPolicy, p.Name, r, now); x != nil {
			res.Exempted = append(res.Exempted, Exemption{Kind: KindValidationPolicy, Policy: p.Name, Exception: x.Name})
			continue
		}
		if p.err != nil {
			res.Matched = append(res.Matched, p.Name)
			res.addError(p, -1, fmt.Errorf("not loaded: %w", p.err))
			continue
		}
		objs, err := p.params.collect(e.params, r)
		if err != nil {
			res.Matched = append(res.Matched, p.Name)
			res.addError(p, -1, err)
			continue
		}
		// Once per parameter object, as the API server evaluates a
		// policy once per parameter of its binding; the conditions too.
		matched := false
		for _, obj := range objs {
			r.setParams(obj)
			ok, err := p.match.holds(ctx, r)
			if err == nil && !ok {
				continue
			}
			if !matched {
				matched = true
				res.Matched = append(res.Matched, p.Name)
			}
			if err != nil {
				res.addError(p, -1, err)
				continue
			}
			p.evaluate(ctx, r, &res)
		}
		r.setParams(nil)
	}
	return res
}

// publish stores a ready snapshot of served, for the MutationRegistry.
func (e *MutationEngine) publish(generation uint64, served []*CompiledMutation, failed int) {
	sortMutations(served)
	s := &MutationSnapshot{Generation: generation, Ready: true, policies: served, failed: failed}
	for _, p := range served {
		s.rules = append(s.rules, p.match.webhookRules...)
		if p.err == nil {
			s.loaded++
		}
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
		if p.err == nil {
			s.loaded++
		}
	}
	s.rules = unionRules(s.rules)
	e.snap.Store(s)
}

// clock is now, or time.Now.
func clock(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}

// passLeftObjectAsItWas reports whether the writes of a pass, made to
// doc, left it as it was before them: doc encodes the same after them as
// with them undone.
func passLeftObjectAsItWas(doc map[string]any, writes undoLog) (bool, error) {
	after, err := json.Marshal(doc)
	if err != nil {
		return false, err
	}
	writes.undo()
	before, err := json.Marshal(doc)
	writes.redo()
	return err == nil && bytes.Equal(before, after), err
}

// CopyExceptions gives e the PolicyExceptions from serves now: the
// background audit's engine exempts what the webhook's exempts.
func (e *ValidationEngine) CopyExceptions(from *ValidationEngine) {
	e.exceptions.index.Store(from.exceptions.index.Load())
}

// ExceptionsVersion changes whenever the PolicyExceptions e serves do.
// An exception that expires does not change it: see NextExpiry.
func (e *ValidationEngine) ExceptionsVersion() uint64 { return e.exceptions.version.Load() }

// NextExpiry is the earliest expiresAt after now of the PolicyExceptions e
// serves (zero when none expires): the next instant what they exempt
// changes although ExceptionsVersion does not.
func (e *ValidationEngine) NextExpiry(now time.Time) time.Time {
	return e.exceptions.load().nextExpiry(now)
}
