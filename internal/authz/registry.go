package authz

import (
	"sync"

	entries "github.com/portcullis-io/portcullis/internal/registry"
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
	policies   entries.Entries[Policy]           // every processed policy by name
	members    map[subjectKey]map[string]*Policy // served policies by subject key, then name
	index      index                             // valid once ready
	ready      bool
	generation uint64
}

// NewRegistry returns a registry that publishes to e.
func NewRegistry(e *Engine) *Registry {
	return &Registry{
		engine:  e,
		members: map[subjectKey]map[string]*Policy{},
	}
}

// entry is p as a registry entry: nil (not served) and broken (served as
// one that cannot be evaluated) are configuration errors.
func entry(p *Policy) entries.Entry[Policy] {
	if p == nil {
		return entries.New[Policy](nil, nil)
	}
	return entries.New(p, p.err)
}

// Set records the AccessPolicy name as processed and publishes a new
// snapshot. Each entry is a compiled policy or a configuration error: nil
// (not served: its subjects or rules did not compile) or a broken policy
// (served, failing closed: see Compile); either way the readiness check
// counts it as seen. p.Name must be name.
func (r *Registry) Set(name string, p *Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, _ := r.policies.Set(name, entry(p))
	r.changedLocked(name, old.Policy, p)
}

// Delete forgets the AccessPolicy name and publishes a new snapshot.
func (r *Registry) Delete(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.policies.Delete(name)
	if !had {
		return
	}
	r.changedLocked(name, old.Policy, nil)
}

// Has reports whether a policy has been processed, served or not: the
// readiness check uses it to wait for every object seen at start-up.
func (r *Registry) Has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.policies.Has(name)
}

// SetAll replaces every policy the registry holds with policies (nil or
// broken: failed to compile) and publishes one snapshot, indexing
// everything once. It is the bulk load: calling Set for each of n policies
// after MarkReady costs O(n) per call.
func (r *Registry) SetAll(policies map[string]*Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.policies = entries.Entries[Policy]{}
	r.members = map[subjectKey]map[string]*Policy{}
	for name, p := range policies {
		r.policies.Set(name, entry(p))
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
	loaded, failed := r.policies.Counts()
	s := &Snapshot{
		Generation: r.generation,
		Ready:      r.ready,
		loaded:     loaded,
		failed:     failed,
	}
	if r.ready {
		s.index = r.index
	}
	r.engine.snap.Store(s)
}
