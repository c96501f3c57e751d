package nscache

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// Admission reads a namespace the cache has not seen yet from the API
// server; authorization's Cache does not, and neither invents one.
func TestReadThrough(t *testing.T) {
	store := toolscache.NewStore(toolscache.MetaNamespaceKeyFunc)
	if err := store.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cached", Labels: map[string]string{"in": "cache"}}}); err != nil {
		t.Fatal(err)
	}
	c := &Cache{store: store}
	fresh := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fresh", Labels: map[string]string{"in": "storage"}}}
	rt := ReadThrough{Cache: c, Reader: fake.NewClientBuilder().WithObjects(fresh).Build()}

	if ns, err := rt.Get("cached"); err != nil || ns.Labels["in"] != "cache" {
		t.Errorf("cached: %v, %v", ns, err)
	}
	if ns, err := rt.Get("fresh"); err != nil || ns.Labels["in"] != "storage" {
		t.Errorf("fresh, through: %v, %v", ns, err)
	}
	if _, err := c.Get("fresh"); !apierrors.IsNotFound(err) {
		t.Errorf("fresh, cache alone: %v, want NotFound", err)
	}
	if _, err := rt.Get("gone"); !apierrors.IsNotFound(err) {
		t.Errorf("gone: %v, want NotFound", err)
	}
}
