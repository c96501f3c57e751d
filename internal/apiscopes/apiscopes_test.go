package apiscopes

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestScope(t *testing.T) {
	disc := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: []*metav1.APIResourceList{
		{GroupVersion: "v1", APIResources: []metav1.APIResource{{Name: "pods", Namespaced: true}, {Name: "pods/log", Namespaced: true}, {Name: "nodes"}}},
		{GroupVersion: "rbac.authorization.k8s.io/v1", APIResources: []metav1.APIResource{{Name: "clusterroles"}, {Name: "roles", Namespaced: true}}},
	}}}
	c := New(disc)
	if _, known := c.Scope("", "nodes"); known {
		t.Error("before the first refresh, nodes should be unknown")
	}
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		group, resource   string
		namespaced, known bool
	}{
		{"", "pods", true, true}, {"", "nodes", false, true},
		{"rbac.authorization.k8s.io", "roles", true, true}, {"rbac.authorization.k8s.io", "clusterroles", false, true},
		{"example.com", "widgets", false, false}, // unknown
		{"", "clusterroles", false, false},       // known in another group only
	} {
		if namespaced, known := c.Scope(tc.group, tc.resource); namespaced != tc.namespaced || known != tc.known {
			t.Errorf("Scope(%q, %q) = %v, %v, want %v, %v", tc.group, tc.resource, namespaced, known, tc.namespaced, tc.known)
		}
	}
}
