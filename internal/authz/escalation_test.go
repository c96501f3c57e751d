package authz

import (
	"fmt"
	"reflect"
	"sort"
	"testing"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// TestGrants: what escalation prevention asks for, read from the compiled
// rules.
func TestGrants(t *testing.T) {
	p := mustCompile(t, accessPolicy("p", allow, withRules(
		authzv1alpha1.Rule{Namespaces: []string{"a", "b"}, APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Readonly: true},
		authzv1alpha1.Rule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"web"}, Verbs: []string{"patch"}},
		authzv1alpha1.Rule{Namespaces: []string{"*", "x"}, APIGroups: []string{"*"}, Resources: []string{"*", "*/scale", "pods/*"}, Verbs: []string{"delete"}},
		authzv1alpha1.Rule{NonResourceURLs: []string{"/metrics", "/logs/*", "*"}, Verbs: []string{"get"}},
	)))
	var got []string
	for _, g := range p.Grants() {
		if g.NonResource != nil {
			got = append(got, g.NonResource.Verb+" "+g.NonResource.Path)
			continue
		}
		r := g.Resource
		got = append(got, fmt.Sprintf("%s %s/%s/%s name=%q ns=%q", r.Verb, r.Group, r.Resource, r.Subresource, r.Name, r.Namespace))
	}
	sort.Strings(got)
	want := []string{
		// "pods/*" is asked as every resource, once with "*" itself.
		`delete */*/ name="" ns=""`, `delete */*/scale name="" ns=""`,
		"get *", "get /logs/*", "get /metrics",
		`get /pods/ name="" ns="a"`, `get /pods/ name="" ns="b"`, `get /pods/log name="" ns="a"`, `get /pods/log name="" ns="b"`,
		`list /pods/ name="" ns="a"`, `list /pods/ name="" ns="b"`, `list /pods/log name="" ns="a"`, `list /pods/log name="" ns="b"`,
		`patch apps/deployments/ name="web" ns=""`,
		`watch /pods/ name="" ns="a"`, `watch /pods/ name="" ns="b"`, `watch /pods/log name="" ns="a"`, `watch /pods/log name="" ns="b"`,
	}
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("grants:\n got %q\nwant %q", got, want)
	}
}
