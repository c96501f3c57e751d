package paramcache

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	dynamicfake "k8s.io/client-go/dynamic/fake"
)

var (
	configMaps = corev1.SchemeGroupVersion.WithKind("ConfigMap")
	secrets    = corev1.SchemeGroupVersion.WithKind("Secret")
	unknown    = schema.GroupVersionKind{Group: "rules.example.com", Version: "v1", Kind: "ReplicaLimit"}
)

func newCache(t *testing.T) *Cache {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	client := dynamicfake.NewSimpleDynamicClient(scheme,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "limits", Namespace: "a"}, Data: map[string]string{"max": "3"}})
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(configMaps, meta.RESTScopeNamespace)
	mapper.Add(secrets, meta.RESTScopeNamespace)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return New(ctx, client, mapper)
}

func waitSynced(t *testing.T, c *Cache, gvk schema.GroupVersionKind) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		synced, err := c.Status(gvk)
		return synced, err
	})
	if err != nil {
		t.Fatalf("%s: %v", gvk, err)
	}
}

func TestWatchesOnlyTheKindsInUse(t *testing.T) {
	c := newCache(t)
	if _, _, err := c.Params(configMaps); err == nil {
		t.Fatal("a kind no policy names is served")
	}
	if err := c.Use("ValidationPolicy/a", configMaps); err != nil {
		t.Fatal(err)
	}
	if err := c.Use("MutationPolicy/b", configMaps); err != nil {
		t.Fatal(err)
	}
	waitSynced(t, c, configMaps)
	inf, scope, err := c.Params(configMaps)
	if err != nil || scope.Name() != meta.RESTScopeNameNamespace {
		t.Fatalf("Params: %v, %v", scope, err)
	}
	if obj, err := inf.Lister().ByNamespace("a").Get("limits"); err != nil || obj == nil {
		t.Fatalf("the parameter object: %v, %v", obj, err)
	}

	// One policy moves to another kind: the first is still named by the
	// other policy, so it stays watched.
	if err := c.Use("ValidationPolicy/a", secrets); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Params(configMaps); err != nil {
		t.Fatalf("a kind still named: %v", err)
	}
	// The last policy naming it goes: it is no longer watched.
	if err := c.Use("MutationPolicy/b", schema.GroupVersionKind{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Params(configMaps); err == nil {
		t.Fatal("a kind no policy names any more is still served")
	}
	if _, _, err := c.Params(secrets); err != nil {
		t.Fatalf("secrets: %v", err)
	}

	// A kind the API server does not serve is an error of the policy,
	// and it names nothing.
	if err := c.Use("ValidationPolicy/a", unknown); err == nil || !strings.Contains(err.Error(), "ReplicaLimit") {
		t.Fatalf("an unknown kind: %v", err)
	}
	if _, _, err := c.Params(secrets); err == nil {
		t.Fatal("the policy's previous kind is still served")
	}
}
