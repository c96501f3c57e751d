package portcullis

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
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

// impersonations asks what the API server's impersonation filter asks for
// acting as the same user.
func TestImpersonations(t *testing.T) {
	got := impersonations(authnv1alpha1.UserInfo{
		Username: "system:serviceaccount:ci:deployer", UID: "42", Groups: []string{"a", "b"},
		Extra: map[string][]string{"team": {"x", "y"}, "acme.io/site": {"z"}},
	})
	var desc []string
	for _, g := range got {
		desc = append(desc, g.describe())
	}
	want := []string{
		`impersonate serviceaccounts "ci/deployer"`,
		`impersonate groups "a"`, `impersonate groups "b"`,
		`impersonate uids "42"`,
		`impersonate userextras/acme.io/site "z"`,
		`impersonate userextras/team "x"`, `impersonate userextras/team "y"`,
	}
	if strings.Join(desc, "\n") != strings.Join(want, "\n") {
		t.Fatalf("impersonations:\n%s\nwant:\n%s", strings.Join(desc, "\n"), strings.Join(want, "\n"))
	}
	if g := got[4].ra; g.Group != "authentication.k8s.io" || g.Resource != "userextras" || g.Subresource != "acme.io/site" {
		t.Errorf("extra check %+v: want authentication.k8s.io userextras/acme.io/site", g)
	}
	if u := impersonations(authnv1alpha1.UserInfo{Username: "bob"}); len(u) != 1 || u[0].ra.Resource != "users" || u[0].ra.Name != "bob" {
		t.Errorf("a plain user: %+v", u)
	}
}
