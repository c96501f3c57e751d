// Package apiscopes keeps which API resources are namespaced, read from the
// API server's discovery away from the request path. The authorization
// engine asks it whether a request across every namespace (namespace "")
// reaches into namespaces, so that a Deny limited to some namespaces covers
// it; a resource it has not seen yet is taken to be namespaced, so that a
// new CRD errs on the side of the Deny until the next refresh.
package apiscopes

import (
	"context"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// RefreshInterval is how often discovery is read again. A CRD installed in
// between is unknown until then: at worst a Deny limited to namespaces
// also covers listing a new cluster-scoped kind for that long, and a
// review of another verb on a new namespaced kind in every namespace is
// not covered for that long.
const RefreshInterval = 30 * time.Second

// Cache answers authz.ResourceScopes from the last discovery it read.
type Cache struct {
	disc  discovery.DiscoveryInterface
	every time.Duration
	m     atomic.Pointer[map[schema.GroupResource]bool]
}

// New returns a Cache that knows nothing until Refresh or Start.
func New(disc discovery.DiscoveryInterface) *Cache {
	return &Cache{disc: disc, every: RefreshInterval}
}

// Scope implements authz.ResourceScopes: whether group/resource is
// namespaced, and whether the last discovery listed it (nothing is known
// before the first).
func (c *Cache) Scope(group, resource string) (namespaced, known bool) {
	m := c.m.Load()
	if m == nil {
		return false, false
	}
	namespaced, known = (*m)[schema.GroupResource{Group: group, Resource: resource}]
	return namespaced, known
}

// Refresh reads discovery and replaces what the cache knows. Groups that
// fail to answer (an aggregated API that is down) keep nothing: their
// resources are taken as namespaced.
func (c *Cache) Refresh(ctx context.Context) error {
	_, lists, err := c.disc.ServerGroupsAndResources()
	if len(lists) == 0 && err != nil {
		return err
	}
	m := make(map[schema.GroupResource]bool)
	for _, l := range lists {
		gv, perr := schema.ParseGroupVersion(l.GroupVersion)
		if perr != nil {
			continue
		}
		for _, r := range l.APIResources {
			gr := schema.GroupResource{Group: gv.Group, Resource: r.Name}
			// A resource served namespaced in any version is namespaced.
			m[gr] = m[gr] || r.Namespaced
		}
	}
	c.m.Store(&m)
	return err
}

// Start implements manager.Runnable: it refreshes now, then every
// RefreshInterval until ctx ends. Errors are logged and retried at the
// next interval; meanwhile the last answer (or "namespaced") stands.
func (c *Cache) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("apiscopes")
	t := time.NewTicker(c.every)
	defer t.Stop()
	for {
		if err := c.Refresh(ctx); err != nil {
			logger.Error(err, "reading discovery; unknown resources are taken as namespaced")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica answers authorization requests.
func (c *Cache) NeedLeaderElection() bool { return false }
