package admission

import (
	"slices"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	entries "github.com/portcullis-io/portcullis/internal/registry"
)

// registry collects compiled policies of one kind from a controller and
// publishes snapshots. Writers serialise on its mutex; readers never see
// it: they load the engine's atomic.Pointer.
//
// Each entry is a compiled policy or a configuration error: a policy that
// failed to compile is kept, broken (its Err set), with what compiled of
// its match, and served, so that its failure policy applies to what it
// matches; it is counted as failed.
//
// Until MarkReady nothing is published, since a not-ready engine answers
// nothing: the start-up load of n policies builds one snapshot, not n.
type registry[P any] struct {
	publish func(generation uint64, served []*P, failed int)
	// errOf is the configuration error of a compiled policy, nil for one
	// that compiled.
	errOf func(*P) error

	mu         sync.Mutex
	policies   entries.Entries[P] // every processed policy by name
	ready      bool
	generation uint64
	// identity names a compiled policy's source: name, UID and
	// generation, which a recompilation of the same spec keeps.
	identity func(*P) string
	// native are the identities of the policies the API server evaluates
	// itself: held, but left out of the snapshots, so the webhook neither
	// evaluates them nor asks for their requests.
	native map[string]bool
}

func newRegistry[P any](publish func(uint64, []*P, int), errOf func(*P) error, identity func(*P) string) registry[P] {
	return registry[P]{publish: publish, errOf: errOf, identity: identity}
}

func (r *registry[P]) entry(p *P) entries.Entry[P] {
	if p == nil {
		return entries.New[P](nil, nil)
	}
	return entries.New(p, r.errOf(p))
}

func (r *registry[P]) set(name string, p *P) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.policies.Set(name, r.entry(p))
	r.publishLocked()
}

func (r *registry[P]) delete(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, had := r.policies.Delete(name); had {
		r.publishLocked()
	}
}

func (r *registry[P]) has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.policies.Has(name)
}

func (r *registry[P]) setAll(policies map[string]*P) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.policies = entries.Entries[P]{}
	for name, p := range policies {
		r.policies.Set(name, r.entry(p))
	}
	r.publishLocked()
}

func (r *registry[P]) markReady() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = true
	r.publishLocked()
}

// setNative replaces the set of natively executed policies, each as the
// compiled policy whose native form the API server holds: one changed
// since (another generation, or deleted and created again) is served by
// the webhook until it is handed over too.
func (r *registry[P]) setNative(native map[string]*P) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.native = make(map[string]bool, len(native))
	for _, p := range native {
		r.native[r.identity(p)] = true
	}
	r.publishLocked()
}

// each calls f for every processed policy, under the registry's lock.
func (r *registry[P]) each(f func(name string, e entries.Entry[P])) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.policies.All(f)
}

func (r *registry[P]) counts() (loaded, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.policies.Counts()
}

// publishLocked publishes a snapshot of the served policies, broken ones
// included, once ready. The slice is new each time; the compiled policies
// are shared, being immutable.
func (r *registry[P]) publishLocked() {
	if !r.ready {
		return
	}
	r.generation++
	_, failed := r.policies.Counts()
	served := r.policies.Served()
	if len(r.native) > 0 {
		served = slices.DeleteFunc(served, func(p *P) bool { return r.native[r.identity(p)] })
	}
	r.publish(r.generation, served, failed)
}

// MutationRegistry collects compiled MutationPolicies from the controller
// and publishes snapshots to a MutationEngine.
type MutationRegistry struct {
	r registry[CompiledMutation]
}

// NewMutationRegistry returns a registry that publishes to e.
func NewMutationRegistry(e *MutationEngine) *MutationRegistry {
	return &MutationRegistry{r: newRegistry(e.publish, (*CompiledMutation).Err, func(p *CompiledMutation) string { return identity(p.Name, p.UID, p.Generation) })}
}

// Set records the MutationPolicy name as processed and, once ready,
// publishes a new snapshot. A broken policy (one that failed to compile)
// is served for its failure policy and counted as failed; either way Has
// counts it as seen. p.Name must be name.
func (r *MutationRegistry) Set(name string, p *CompiledMutation) { r.r.set(name, p) }

// Delete forgets the MutationPolicy name and, once ready, publishes a new
// snapshot.
func (r *MutationRegistry) Delete(name string) { r.r.delete(name) }

// Has reports whether a policy has been processed, served or not: the
// readiness check uses it to wait for every object seen at start-up.
func (r *MutationRegistry) Has(name string) bool { return r.r.has(name) }

// SetAll replaces every policy the registry holds with policies (broken
// ones included) and, once ready, publishes one snapshot.
func (r *MutationRegistry) SetAll(policies map[string]*CompiledMutation) { r.r.setAll(policies) }

// MarkReady publishes the first snapshot that serves requests. Called
// once, when every policy that existed at start-up has been processed;
// later calls only republish.
func (r *MutationRegistry) MarkReady() { r.r.markReady() }

// Counts reports how many policies compiled and how many failed to
// compile (and apply only their failure policy), ready or not, for the
// operator's status.
func (r *MutationRegistry) Counts() (loaded, failed int) { return r.r.counts() }

// SetNative says which policies the API server evaluates itself, each as
// the compiled policy it was generated from: they leave the webhook's
// snapshots (its rules too) until a later call, or a recompilation, puts
// them back.
func (r *MutationRegistry) SetNative(native map[string]*CompiledMutation) { r.r.setNative(native) }

// Each calls f with every processed policy and its configuration error
// (p nil for one not served), under the registry's lock: f must not call
// the registry.
func (r *MutationRegistry) Each(f func(name string, p *CompiledMutation, err error)) {
	r.r.each(func(name string, e entries.Entry[CompiledMutation]) { f(name, e.Policy, e.Err) })
}

// ValidationRegistry collects compiled ValidationPolicies from the
// controller and publishes snapshots to a ValidationEngine.
type ValidationRegistry struct {
	r registry[CompiledValidation]
}

// NewValidationRegistry returns a registry that publishes to e.
func NewValidationRegistry(e *ValidationEngine) *ValidationRegistry {
	return &ValidationRegistry{r: newRegistry(e.publish, (*CompiledValidation).Err, func(p *CompiledValidation) string { return identity(p.Name, p.UID, p.Generation) })}
}

// Set records the ValidationPolicy name as processed and, once ready,
// publishes a new snapshot. A broken policy (one that failed to compile)
// is served for its failure policy and counted as failed; either way Has
// counts it as seen. p.Name must be name.
func (r *ValidationRegistry) Set(name string, p *CompiledValidation) { r.r.set(name, p) }

// Delete forgets the ValidationPolicy name and, once ready, publishes a
// new snapshot.
func (r *ValidationRegistry) Delete(name string) { r.r.delete(name) }

// Has reports whether a policy has been processed, served or not: the
// readiness check uses it to wait for every object seen at start-up.
func (r *ValidationRegistry) Has(name string) bool { return r.r.has(name) }

// SetAll replaces every policy the registry holds with policies (broken
// ones included) and, once ready, publishes one snapshot.
func (r *ValidationRegistry) SetAll(policies map[string]*CompiledValidation) { r.r.setAll(policies) }

// MarkReady publishes the first snapshot that serves requests. Called
// once, when every policy that existed at start-up has been processed;
// later calls only republish.
func (r *ValidationRegistry) MarkReady() { r.r.markReady() }

// Counts reports how many policies compiled and how many failed to
// compile (and apply only their failure policy), ready or not, for the
// operator's status.
func (r *ValidationRegistry) Counts() (loaded, failed int) { return r.r.counts() }

// SetNative says which policies the API server evaluates itself, each as
// the compiled policy it was generated from: they leave the webhook's
// snapshots (its rules too) until a later call, or a recompilation, puts
// them back.
func (r *ValidationRegistry) SetNative(native map[string]*CompiledValidation) { r.r.setNative(native) }

// Each calls f with every processed policy and its configuration error
// (p nil for one not served), under the registry's lock: f must not call
// the registry.
func (r *ValidationRegistry) Each(f func(name string, p *CompiledValidation, err error)) {
	r.r.each(func(name string, e entries.Entry[CompiledValidation]) { f(name, e.Policy, e.Err) })
}

func identity(name string, uid types.UID, generation int64) string {
	return name + "/" + string(uid) + "/" + strconv.FormatInt(generation, 10)
}
