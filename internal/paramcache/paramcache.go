// Package paramcache watches the parameter kinds that admission policies
// name (spec.paramKind), so that the engines read parameter objects from
// an informer cache on the request path, never from the API server. Only
// the kinds that loaded policies name are watched: an informer starts when
// the first policy names its kind and stops when the last one no longer
// does. Listing and watching a kind needs the operator's RBAC to allow it;
// that grant is the admin's choice, and a kind the operator may not list
// is reported in the status of the policies that name it.
package paramcache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	engine "github.com/portcullis-io/portcullis/internal/admission"
)

// Cache is the informers of the parameter kinds in use. It implements
// engine.ParamSource. It is safe for concurrent use.
type Cache struct {
	ctx    context.Context
	client dynamic.Interface
	mapper meta.RESTMapper

	mu    sync.RWMutex
	kinds map[schema.GroupVersionKind]*kind
	users map[string]schema.GroupVersionKind // by policy

	// changes counts the parameter objects added, updated and deleted.
	changes atomic.Uint64
}

// Changes counts the changes of parameter objects seen so far: it moves
// whenever a parameter changes (the background audit audits again).
func (c *Cache) Changes() uint64 { return c.changes.Load() }

var _ engine.ParamSource = (*Cache)(nil)

// kind is one watched parameter kind.
type kind struct {
	informer informers.GenericInformer
	scope    meta.RESTScope
	stop     context.CancelFunc

	mu      sync.Mutex
	lastErr error // the last list or watch error
}

// New returns a cache whose informers run until ctx is done; mapper
// resolves kinds to resources (a lazy, refreshing mapper finds CRDs
// installed later).
func New(ctx context.Context, client dynamic.Interface, mapper meta.RESTMapper) *Cache {
	return &Cache{ctx: ctx, client: client, mapper: mapper,
		kinds: map[schema.GroupVersionKind]*kind{}, users: map[string]schema.GroupVersionKind{}}
}

// Params implements engine.ParamSource.
func (c *Cache) Params(gvk schema.GroupVersionKind) (informers.GenericInformer, meta.RESTScope, error) {
	c.mu.RLock()
	k := c.kinds[gvk]
	c.mu.RUnlock()
	if k == nil {
		return nil, nil, fmt.Errorf("paramKind kind `%s` not known", gvk)
	}
	return k.informer, k.scope, nil
}

// Use records that policy (a key such as "ValidationPolicy/name") names
// gvk as its paramKind, the zero kind for none, and watches the kinds in
// use: it starts gvk's informer if no policy named it, and stops the one
// of the kind the policy named before if no other policy does. The error
// is for a kind the API server does not serve; the policy then names
// nothing. Resolving a kind may ask the API server, so it is done without
// holding the lock that Params reads under.
func (c *Cache) Use(policy string, gvk schema.GroupVersionKind) error {
	for {
		c.mu.Lock()
		if gvk.Empty() || c.kinds[gvk] != nil {
			c.assign(policy, gvk)
			c.mu.Unlock()
			return nil
		}
		c.mu.Unlock()
		k, err := c.watch(gvk)
		c.mu.Lock()
		switch {
		case err != nil:
			c.assign(policy, schema.GroupVersionKind{})
			c.mu.Unlock()
			return err
		case c.kinds[gvk] == nil:
			c.kinds[gvk] = k
			c.assign(policy, gvk)
			c.mu.Unlock()
			return nil
		}
		// Another policy started it meanwhile: use that one.
		c.mu.Unlock()
		k.stop()
	}
}

// assign records that policy names gvk (none when zero), and stops
// watching the kind it named before if no policy names it any more. The
// caller holds the lock.
func (c *Cache) assign(policy string, gvk schema.GroupVersionKind) {
	prev, had := c.users[policy]
	if gvk.Empty() {
		delete(c.users, policy)
	} else {
		c.users[policy] = gvk
	}
	if had && prev != gvk {
		c.release(prev)
	}
}

// release stops gvk's informer if no policy names it any more. The caller
// holds the lock.
func (c *Cache) release(gvk schema.GroupVersionKind) {
	for _, g := range c.users {
		if g == gvk {
			return
		}
	}
	if k := c.kinds[gvk]; k != nil {
		k.stop()
		delete(c.kinds, gvk)
	}
}

// watch starts an informer for gvk.
func (c *Cache) watch(gvk schema.GroupVersionKind) (*kind, error) {
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("paramKind %s: %w", gvk, err)
	}
	inf := dynamicinformer.NewFilteredDynamicInformer(c.client, m.Resource, metav1.NamespaceAll, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil)
	ctx, stop := context.WithCancel(c.ctx)
	k := &kind{informer: inf, scope: m.Scope, stop: stop}
	if err := inf.Informer().SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		k.mu.Lock()
		k.lastErr = err
		k.mu.Unlock()
	}); err != nil {
		stop()
		return nil, err
	}
	count := func(any) { c.changes.Add(1) }
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: count, DeleteFunc: count, UpdateFunc: func(_, o any) { count(o) },
	}); err != nil {
		stop()
		return nil, err
	}
	go inf.Informer().RunWithContext(ctx)
	return k, nil
}

// Status reports whether gvk's cache has synced, and the last error
// listing or watching it (forbidden, say), for the status of the policies
// that name it.
func (c *Cache) Status(gvk schema.GroupVersionKind) (synced bool, err error) {
	c.mu.RLock()
	k := c.kinds[gvk]
	c.mu.RUnlock()
	if k == nil {
		return false, fmt.Errorf("paramKind kind `%s` not known", gvk)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.informer.Informer().HasSynced(), k.lastErr
}
