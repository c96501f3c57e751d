package authn

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apiserver/pkg/authentication/authenticator"

	entries "github.com/portcullis-io/portcullis/internal/registry"
)

// Snapshot is one immutable, compiled view of every StaticToken and
// JWTAuthenticator. It is never modified after Publish; a change builds a
// new one.
type Snapshot struct {
	// Generation counts published snapshots, for logs and metrics.
	Generation uint64
	// Ready is false until the controllers have compiled every object that
	// existed at start-up; until then every token is unauthenticated.
	Ready bool

	static map[Digest]*StaticEntry
	jwt    map[string]*JWTAuthenticator
}

// Counts reports how many objects of each kind the snapshot serves.
func (s *Snapshot) Counts() (static, jwt int) { return len(s.static), len(s.jwt) }

// Decision says which object decided a review, for the decision log.
type Decision struct {
	// Kind is "StaticToken", "JWTAuthenticator" or "" when nothing matched.
	Kind string
	// Name of the object that matched.
	Name string
	// Reason is a log-only explanation of a failure: it may say that a
	// token expired or that a signature was bad, so it is never sent to
	// the client.
	Reason string
}

// Engine authenticates tokens against the current Snapshot. It implements
// authenticator.Token.
type Engine struct {
	snap atomic.Pointer[Snapshot]
	now  func() time.Time
}

var _ authenticator.Token = (*Engine)(nil)

// NewEngine returns an Engine that is not ready: it authenticates nothing
// until a ready Snapshot is published.
func NewEngine(now func() time.Time) *Engine {
	if now == nil {
		now = time.Now
	}
	e := &Engine{now: now}
	e.snap.Store(&Snapshot{})
	return e
}

// Snapshot returns the snapshot in use.
func (e *Engine) Snapshot() *Snapshot { return e.snap.Load() }

// Ready reports whether the engine serves a complete snapshot.
func (e *Engine) Ready() bool { return e.snap.Load().Ready }

// AuthenticateToken implements authenticator.Token. A token that no object
// recognises, or that fails any check, is (nil, false, nil): callers must not
// tell the client which check failed.
func (e *Engine) AuthenticateToken(ctx context.Context, token string) (*authenticator.Response, bool, error) {
	resp, _, ok := e.Authenticate(ctx, token)
	return resp, ok, nil
}

// Authenticate is AuthenticateToken with the decision for the log.
func (e *Engine) Authenticate(ctx context.Context, token string) (*authenticator.Response, Decision, bool) {
	s := e.snap.Load()
	if !s.Ready {
		return nil, Decision{Reason: "not ready: policies are still loading"}, false
	}
	if token == "" {
		return nil, Decision{Reason: "empty token"}, false
	}
	if st, ok := s.static[DigestOf(token)]; ok {
		d := Decision{Kind: KindStaticToken, Name: st.Name}
		switch {
		case st.Disabled:
			d.Reason = "token is disabled"
			return nil, d, false
		case !st.ExpiresAt.IsZero() && !e.now().Before(st.ExpiresAt):
			d.Reason = "token expired"
			return nil, d, false
		}
		return &authenticator.Response{User: st.User}, d, true
	}
	iss, ok := UnverifiedIssuer(token)
	if !ok {
		return nil, Decision{Reason: "unknown token"}, false
	}
	a, ok := s.jwt[iss]
	if !ok {
		return nil, Decision{Reason: "no JWTAuthenticator for the token's issuer"}, false
	}
	d := Decision{Kind: KindJWTAuthenticator, Name: a.Name}
	resp, ok, err := a.AuthenticateToken(ctx, token)
	if err != nil || !ok {
		if err != nil {
			d.Reason = err.Error()
		}
		return nil, d, false
	}
	return resp, d, true
}

// Registry collects compiled objects from the controllers and publishes
// snapshots to an Engine. Writers serialise on its mutex; readers never see
// it.
type Registry struct {
	engine *Engine

	mu         sync.Mutex
	static     entries.Entries[StaticEntry]      // by object name
	holders    map[Digest]map[string]bool        // StaticToken names by the digest they hold
	jwt        entries.Entries[JWTAuthenticator] // by object name
	ready      bool
	generation uint64
}

// NewRegistry returns a registry that publishes to e.
func NewRegistry(e *Engine) *Registry {
	return &Registry{engine: e, holders: map[Digest]map[string]bool{}}
}

// SetStatic records the StaticToken name as processed. A nil entry is a
// configuration error: the object exists but is not served (its status
// says why); either way the readiness check counts it as seen. A new
// snapshot is published.
func (r *Registry) SetStatic(name string, entry *StaticEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetHolderLocked(name)
	r.static.Set(name, entries.New(entry, nil))
	if entry != nil {
		if r.holders[entry.Digest] == nil {
			r.holders[entry.Digest] = map[string]bool{}
		}
		r.holders[entry.Digest][name] = true
	}
	r.publishLocked()
}

// DeleteStatic forgets the StaticToken name and publishes a new snapshot.
func (r *Registry) DeleteStatic(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetHolderLocked(name)
	r.static.Delete(name)
	r.publishLocked()
}

// SetJWT records the JWTAuthenticator name as processed; nil is a
// configuration error, not served. A new snapshot is published.
func (r *Registry) SetJWT(name string, a *JWTAuthenticator) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jwt.Set(name, entries.New(a, nil))
	r.publishLocked()
}

// DeleteJWT forgets the JWTAuthenticator name and publishes a new snapshot.
func (r *Registry) DeleteJWT(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.jwt.Delete(name)
	r.publishLocked()
}

// Kinds, as the registry and decisions name them.
const (
	KindStaticToken      = "StaticToken"
	KindJWTAuthenticator = "JWTAuthenticator"
)

// Has reports whether an object has been processed, served or not: the
// readiness check uses it to wait for every object seen at start-up.
func (r *Registry) Has(kind, name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch kind {
	case KindStaticToken:
		return r.static.Has(name)
	case KindJWTAuthenticator:
		return r.jwt.Has(name)
	}
	return false
}

// Counts reports how many objects of kind are served and how many failed
// to compile, for metrics and status.
func (r *Registry) Counts(kind string) (loaded, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch kind {
	case KindStaticToken:
		return r.static.Counts()
	case KindJWTAuthenticator:
		return r.jwt.Counts()
	}
	return loaded, failed
}

// MarkReady publishes a snapshot that serves requests. Called once, when
// every object that existed at start-up has been processed.
func (r *Registry) MarkReady() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = true
	r.publishLocked()
}

func (r *Registry) publishLocked() {
	// Until ready nothing is served, so there is nothing to publish: the
	// start-up load of n objects costs one snapshot build, not n.
	if !r.ready {
		return
	}
	r.generation++
	s := &Snapshot{
		Generation: r.generation,
		Ready:      r.ready,
		static:     make(map[Digest]*StaticEntry, len(r.holders)),
		jwt:        map[string]*JWTAuthenticator{},
	}
	// Two StaticTokens may hold the same token: a token has one identity,
	// the oldest object's (then the first by name); the others are not
	// served and report a conflict (StaticConflict). Two JWTAuthenticators
	// may claim one issuer: the first by name wins. Either way the answer
	// does not depend on map order.
	for d, names := range r.holders {
		var served *StaticEntry
		for n := range names {
			if e := r.staticEntry(n); served == nil || olderStatic(e, served) {
				served = e
			}
		}
		s.static[d] = served
	}
	var names []string
	r.jwt.All(func(n string, _ entries.Entry[JWTAuthenticator]) { names = append(names, n) })
	sort.Strings(names)
	for _, n := range names {
		e, _ := r.jwt.Get(n)
		a := e.Policy
		if a == nil {
			continue
		}
		if _, dup := s.jwt[a.Issuer]; !dup {
			s.jwt[a.Issuer] = a
		}
	}
	r.engine.snap.Store(s)
}

// StaticConflict reports whether the StaticToken name holds a token that
// an older StaticToken also holds, and names that one (the served one).
func (r *Registry) StaticConflict(name string) (servedBy string, conflict bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	mine := r.staticEntry(name)
	if mine == nil {
		return "", false
	}
	// Only the holders of the same digest are compared: a handful, not
	// every StaticToken, so a bulk load does not go quadratic.
	served := mine
	for n := range r.holders[mine.Digest] {
		if e := r.staticEntry(n); olderStatic(e, served) {
			served = e
		}
	}
	return served.Name, served.Name != name
}

// olderStatic orders StaticTokens for serving: oldest first, then by name.
func olderStatic(a, b *StaticEntry) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return a.Name < b.Name
}

// forgetHolderLocked drops name from the holders of the digest it held.
func (r *Registry) forgetHolderLocked(name string) {
	old := r.staticEntry(name)
	if old == nil {
		return
	}
	delete(r.holders[old.Digest], name)
	if len(r.holders[old.Digest]) == 0 {
		delete(r.holders, old.Digest)
	}
}

// staticEntry is the served entry of the StaticToken name, nil when it is
// not served or unknown.
func (r *Registry) staticEntry(name string) *StaticEntry {
	e, _ := r.static.Get(name)
	return e.Policy
}
