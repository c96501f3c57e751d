package authz

import (
	"sync"
)

// Registry collects compiled policies from the controllers and publishes
// snapshots to an Engine. Writers serialise on its mutex; readers never
// see it.
//
// The index is kept up to date incrementally: a change rebuilds only the
// buckets of the subjects the changed policy names (old and new), and
// copies the subject maps' pointers, not the policies' rules. Before
// MarkReady nothing is indexed, since a not-ready snapshot answers
// nothing; MarkReady and SetAll index everything at once. So loading n
// policies costs O(n) however they arrive, not O(n²).
type Registry struct {
	engine *Engine

	mu         sync.Mutex
	policies   map[string]*Policy                // every processed policy by name; nil or broken (Err): failed to compile
	members    map[subjectKey]map[string]*Policy // served policies by subject key, then name
	index      index                             // valid once ready
	failed     int                               // nil or broken entries of policies
	ready      bool
	generation uint64
}

// NewRegistry returns a registry that publishes to e.
func NewRegistry(e *Engine) *Registry {
	return &Registry{
		engine:   e,
		policies: map[string]*Policy{},
		members:  map[subjectKey]map[string]*Policy{},
	}
}

// failedToCompile reports whether a registry entry is a configuration
// error: nil (not served) or broken (served as one that cannot be
// evaluated).
func failedToCompile(p *Policy) bool { return p == nil || p.err != nil }

// Set records the AccessPolicy name as processed and publishes a new
// snapshot. Each entry is a compiled policy or a configuration error: nil
// (not served: its subjects or rules did not compile) or a broken policy
// (served, failing closed: see Compile); either way the readiness check
// counts it as seen. p.Name must be name.
func (r *Registry) Set(name string, p *Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.policies[name]
	r.policies[name] = p
	if had && failedToCompile(old) {
		r.failed--
	}
	if failedToCompile(p) {
		r.failed++
	}
	r.changedLocked(name, old, p)
}

// Delete forgets the AccessPolicy name and publishes a new snapshot.
func (r *Registry) Delete(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.policies[name]
	if !had {
		return
	}
	delete(r.policies, name)
	if failedToCompile(old) {
		r.failed--
	}
	r.changedLocked(name, old, nil)
}

// Has reports whether a policy has been processed, served or not: the
// readiness check uses it to wait for every object seen at start-up.
func (r *Registry) Has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.policies[name]
	return ok
}

// SetAll replaces every policy the registry holds with policies (nil or
// broken: failed to compile) and publishes one snapshot, indexing
// everything once. It is the bulk load: calling Set for each of n policies
// after MarkReady costs O(n) per call.
func (r *Registry) SetAll(policies map[string]*Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.policies = make(map[string]*Policy, len(policies))
	r.members = map[subjectKey]map[string]*Policy{}
	r.failed = 0
	for name, p := range policies {
		r.policies[name] = p
		if failedToCompile(p) {
			r.failed++
		}
		if p == nil {
			continue
		}
		r.addMemberLocked(name, p)
	}
	if r.ready {
		r.index = buildIndex(r.members)
	}
	r.publishLocked()
}

// MarkReady indexes every policy and publishes a snapshot that serves
// requests. Called once, when every policy that existed at start-up has
// been processed; later calls only republish.
func (r *Registry) MarkReady() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ready {
		r.ready = true
		r.index = buildIndex(r.members)
	}
	r.publishLocked()
}

// changedLocked moves policy name from old to p in the members and, once
// ready, rebuilds the buckets of the subjects either names.
func (r *Registry) changedLocked(name string, old, p *Policy) {
	var affected []subjectKey
	if old != nil {
		affected = old.subjectKeys()
		for _, k := range affected {
			if m := r.members[k]; m != nil {
				delete(m, name)
				if len(m) == 0 {
					delete(r.members, k)
				}
			}
		}
	}
	if p != nil {
		affected = append(affected, p.subjectKeys()...)
		r.addMemberLocked(name, p)
	}
	if r.ready && len(affected) > 0 {
		ix := r.index.clone()
		done := make(map[subjectKey]bool, len(affected))
		for _, k := range affected {
			if !done[k] {
				done[k] = true
				ix.set(k, r.members[k])
			}
		}
		r.index = ix
	}
	r.publishLocked()
}

func (r *Registry) addMemberLocked(name string, p *Policy) {
	for _, k := range p.subjectKeys() {
		m := r.members[k]
		if m == nil {
			m = map[string]*Policy{}
			r.members[k] = m
		}
		m[name] = p
	}
}

// publishLocked stores a new snapshot. It shares r.index, whose maps are
// never written again: the next change clones them first.
func (r *Registry) publishLocked() {
	r.generation++
	s := &Snapshot{
		Generation: r.generation,
		Ready:      r.ready,
		loaded:     len(r.policies) - r.failed,
		failed:     r.failed,
	}
	if r.ready {
		s.index = r.index
	}
	r.engine.snap.Store(s)
}
