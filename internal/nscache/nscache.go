// Package nscache is the operator's namespace cache, shared by the phases
// that select by namespace labels (authorization's namespaceSelector,
// admission's namespaceSelector and namespaceObject). It reads the
// manager's informer store without copying: the objects are shared and only
// read.
package nscache

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Cache looks namespaces up in the manager's informer store.
type Cache struct{ store toolscache.Store }

// New starts (or reuses) the manager's namespace informer, which syncs with
// the other caches before readiness, and returns a Cache over it.
func New(ctx context.Context, mgr manager.Manager) (*Cache, error) {
	inf, err := mgr.GetCache().GetInformer(ctx, &corev1.Namespace{})
	if err != nil {
		return nil, fmt.Errorf("namespace informer: %w", err)
	}
	sii, ok := inf.(toolscache.SharedIndexInformer)
	if !ok {
		return nil, fmt.Errorf("namespace informer is a %T, not a SharedIndexInformer", inf)
	}
	return &Cache{store: sii.GetIndexer()}, nil
}

// Get returns the cached namespace, or a NotFound error.
func (c *Cache) Get(name string) (*corev1.Namespace, error) {
	obj, ok, err := c.store.GetByKey(name)
	if err != nil {
		return nil, err
	}
	ns, isNS := obj.(*corev1.Namespace)
	if !ok || !isNS {
		return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, name)
	}
	return ns, nil
}

// Labels returns the namespace's labels; false when it is not known.
func (c *Cache) Labels(name string) (labels.Set, bool) {
	ns, err := c.Get(name)
	if err != nil {
		return nil, false
	}
	return labels.Set(ns.Labels), true
}
