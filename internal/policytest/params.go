package policytest

import (
	"context"
	"fmt"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/portcullis-io/portcullis/internal/admission"
)

// paramSource serves a suite's parameter objects to the admission
// engines through client-go informers fed from the files (a list, and a
// watch that never changes), so policies read their parameters exactly as
// they read them from the operator's caches.
type paramSource struct {
	ctx   context.Context
	byGVK map[schema.GroupVersionKind]*paramInformer
}

type paramInformer struct {
	informer cache.SharedIndexInformer
	resource schema.GroupResource
	scope    apimeta.RESTScope
}

func (p *paramInformer) Informer() cache.SharedIndexInformer { return p.informer }
func (p *paramInformer) Lister() cache.GenericLister {
	return cache.NewGenericLister(p.informer.GetIndexer(), p.resource)
}

var _ informers.GenericInformer = (*paramInformer)(nil)

// NewParamSource serves objs as the parameters of admission engines (for
// portcullis explain): an informer per kind, stopping with ctx.
func NewParamSource(ctx context.Context, objs []*unstructured.Unstructured) (admission.ParamSource, error) {
	return newParamSource(ctx, objs)
}

// newParamSource starts an informer per kind of objs; they stop with ctx.
func newParamSource(ctx context.Context, objs []*unstructured.Unstructured) (*paramSource, error) {
	groups := map[schema.GroupVersionKind][]*unstructured.Unstructured{}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		groups[gvk] = append(groups[gvk], o)
	}
	s := &paramSource{ctx: ctx, byGVK: map[schema.GroupVersionKind]*paramInformer{}}
	for gvk, items := range groups {
		if err := s.start(gvk, items); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// start runs the informer of gvk over items.
func (s *paramSource) start(gvk schema.GroupVersionKind, items []*unstructured.Unstructured) error {
	ctx := s.ctx
	{
		lw := &cache.ListWatch{
			ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
				l := &unstructured.UnstructuredList{}
				l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
				l.SetResourceVersion("1")
				for _, o := range items {
					l.Items = append(l.Items, *o.DeepCopy())
				}
				return l, nil
			},
			WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) {
				return watch.NewFake(), nil
			},
		}
		inf := cache.NewSharedIndexInformer(listFirst{lw}, &unstructured.Unstructured{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		go inf.RunWithContext(ctx)
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return fmt.Errorf("parameters of kind %s did not load", gvk)
		}
		scope, err := scopeOf(gvk, items)
		if err != nil {
			return err
		}
		gvr, _ := apimeta.UnsafeGuessKindToResource(gvk)
		s.byGVK[gvk] = &paramInformer{informer: inf, resource: gvr.GroupResource(), scope: scope}
	}
	return nil
}

// scopeOf is whether the parameter kind is namespaced: the built-ins'
// scope, else what its objects say, all alike.
func scopeOf(gvk schema.GroupVersionKind, items []*unstructured.Unstructured) (apimeta.RESTScope, error) {
	withNamespace := 0
	for _, o := range items {
		if o.GetNamespace() != "" {
			withNamespace++
		}
	}
	switch {
	case clusterScoped[gvk.GroupKind()] && withNamespace > 0:
		return nil, fmt.Errorf("parameters of kind %s: the kind is cluster-scoped, and %d of them have a namespace", gvk, withNamespace)
	case clusterScoped[gvk.GroupKind()], len(items) > 0 && withNamespace == 0 && !namespacedBuiltin[gvk.GroupKind()]:
		return apimeta.RESTScopeRoot, nil
	case withNamespace < len(items):
		return nil, fmt.Errorf("parameters of kind %s: %d of %d have no metadata.namespace; objects of a namespaced kind need one", gvk, len(items)-withNamespace, len(items))
	}
	return apimeta.RESTScopeNamespace, nil
}

// namespacedBuiltin are the built-in kinds parameters are usually of.
var namespacedBuiltin = map[schema.GroupKind]bool{{Kind: "ConfigMap"}: true, {Kind: "Secret"}: true}

// listFirst tells the reflector to list, then watch: the files have no
// watch-list stream (with its bookmark) to send.
type listFirst struct{ *cache.ListWatch }

func (listFirst) IsWatchListSemanticsUnSupported() bool { return true }

// Params implements admission.ParamSource. A kind the test has no
// objects of has none, as in a cluster that serves it: the policy's
// parameterNotFoundAction applies.
func (s *paramSource) Params(gvk schema.GroupVersionKind) (informers.GenericInformer, apimeta.RESTScope, error) {
	if _, ok := s.byGVK[gvk]; !ok {
		if err := s.start(gvk, nil); err != nil {
			return nil, nil, err
		}
	}
	p := s.byGVK[gvk]
	return p, p.scope, nil
}
