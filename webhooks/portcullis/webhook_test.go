package portcullis

import (
	"reflect"
	"sort"
	"testing"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

func TestGrants(t *testing.T) {
	p := &authzv1alpha1.AccessPolicy{Spec: authzv1alpha1.AccessPolicySpec{
		Effect: authzv1alpha1.EffectAllow,
		Rules: []authzv1alpha1.Rule{
			{Namespaces: []string{"a", "b"}, APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Readonly: true},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"web"}, Verbs: []string{"patch"}},
			{Namespaces: []string{"*", "x"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"delete"}},
			{NonResourceURLs: []string{"/metrics", "/logs/*"}, Verbs: []string{"get"}},
		},
	}}
	var got []string
	for _, g := range grants(p) {
		got = append(got, g.describe())
	}
	sort.Strings(got)
	want := []string{
		"delete *.* in all namespaces",
		"get /logs/*",
		"get /metrics",
		"get pods in namespace a", "get pods in namespace b",
		"get pods/log in namespace a", "get pods/log in namespace b",
		"list pods in namespace a", "list pods in namespace b",
		"list pods/log in namespace a", "list pods/log in namespace b",
		"patch deployments.apps web in all namespaces",
		"watch pods in namespace a", "watch pods in namespace b",
		"watch pods/log in namespace a", "watch pods/log in namespace b",
	}
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("grants:\n got %q\nwant %q", got, want)
	}
}
