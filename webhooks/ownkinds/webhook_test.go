package ownkinds

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/authn"
	"github.com/portcullis-io/portcullis/internal/authz"
)

// authn.Impersonations asks what the API server's impersonation filter asks for
// acting as the same user.
func TestImpersonations(t *testing.T) {
	got := authn.Impersonations(authnv1alpha1.UserInfo{
		Username: "system:serviceaccount:ci:deployer", UID: "42", Groups: []string{"a", "b"},
		Extra: map[string][]string{"team": {"x", "y"}, "acme.io/site": {"z"}},
	})
	var desc []string
	for _, g := range got {
		desc = append(desc, describe(g))
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
	if g := got[4].Resource; g.Group != "authentication.k8s.io" || g.Resource != "userextras" || g.Subresource != "acme.io/site" {
		t.Errorf("extra check %+v: want authentication.k8s.io userextras/acme.io/site", g)
	}
	if u := authn.Impersonations(authnv1alpha1.UserInfo{Username: "bob"}); len(u) != 1 || u[0].Resource.Resource != "users" || u[0].Resource.Name != "bob" {
		t.Errorf("a plain user: %+v", u)
	}
}

// The escalation check asks for what the compiled policy grants.
func TestDescribeGrants(t *testing.T) {
	p, errs := authz.Compile(nil, &authzv1alpha1.AccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: authzv1alpha1.AccessPolicySpec{
		Effect:   authzv1alpha1.EffectAllow,
		Subjects: []authzv1alpha1.Subject{{Kind: authzv1alpha1.SubjectUser, Name: "u"}},
		Rules: []authzv1alpha1.Rule{
			{Namespaces: []string{"a"}, APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"web"}, Verbs: []string{"patch"}},
			{Namespaces: []string{"*", "x"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"delete"}},
			{NonResourceURLs: []string{"/logs/*"}, Verbs: []string{"get"}},
		},
	}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var got []string
	for _, g := range p.Grants() {
		got = append(got, describe(g))
	}
	want := []string{"get pods/log in namespace a", "patch deployments.apps web in all namespaces", "delete *.* in all namespaces", "get /logs/*"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("grants:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
