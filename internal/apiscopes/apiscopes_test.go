package apiscopes

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestNamespaced(t *testing.T) {
	disc := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{{Name: "pods", Namespaced: true}, {Name: "pods/log", Namespaced: true}, {Name: "nodes"}}},
		{GroupVersion: "rbac.authorization.k8s.io/v1", APIResources: []metav1.APIResource{{Name: "clusterroles"}, {Name: "roles", Namespaced: true}}},
	}}}
	c := New(disc)
	if !c.Namespaced("", "nodes") {
		t.Error("before the first refresh, nodes should be taken as namespaced")
	}
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		group, resource string
		want            bool
	}{
		{"", "pods", true}, {"", "nodes", false},
		{"rbac.authorization.k8s.io", "roles", true}, {"rbac.authorization.k8s.io", "clusterroles", false},
		{"example.com", "widgets", true}, // unknown
		{"", "clusterroles", true},       // known in another group only
	} {
		if got := c.Namespaced(tc.group, tc.resource); got != tc.want {
			t.Errorf("Namespaced(%q, %q) = %v, want %v", tc.group, tc.resource, got, tc.want)
		}
	}
}
