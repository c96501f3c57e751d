package ownkinds

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

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
		Extra: map[string]authnv1alpha1.ExtraValues{"team": {"x", "y"}, "acme.io/site": {"z"}},
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

// A JWTAuthenticator's author must hold every identity it can mint, and
// the answers are the chain's: a Deny that keeps the author from
// impersonating system:masters, by name, refuses the author the reviews of
// impersonating any group, which include it; and a service-account
// username is asked for as the impersonation filter asks for one.
func TestJWTAuthenticatorGrantsMeetNamedDenies(t *testing.T) {
	grants := authn.JWTAuthenticatorGrants()
	var desc []string
	for _, g := range grants {
		desc = append(desc, describe(g))
	}
	for _, want := range []string{`impersonate users`, `impersonate serviceaccounts`, `impersonate groups`} {
		found := false
		for _, d := range desc {
			found = found || strings.HasPrefix(d, want+" ")
		}
		if !found {
			t.Errorf("grants %q: none is %q", desc, want)
		}
	}

	deny, errs := authz.Compile(nil, &authzv1alpha1.AccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: "no-masters"}, Spec: authzv1alpha1.AccessPolicySpec{
		Effect:   authzv1alpha1.EffectDeny,
		Subjects: []authzv1alpha1.Subject{{Kind: authzv1alpha1.SubjectUser, Name: "alice"}},
		Rules: []authzv1alpha1.Rule{
			{APIGroups: []string{""}, Resources: []string{"groups"}, ResourceNames: []string{"system:masters"}, Verbs: []string{"impersonate"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Namespaces: []string{"kube-system"}, Verbs: []string{"impersonate"}},
		},
	}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	// Service accounts are namespaced, as discovery says.
	e := authz.NewEngine(nil, authz.ResourceScopeMap{{Resource: "serviceaccounts"}: true})
	r := authz.NewRegistry(e)
	r.Set("no-masters", deny)
	r.MarkReady()
	alice := &user.DefaultInfo{Name: "alice"}
	denied := map[string]bool{}
	for _, g := range grants {
		a := g.Resource
		attrs := authorizer.AttributesRecord{User: alice, Verb: a.Verb, Namespace: a.Namespace, APIGroup: a.Group, Resource: a.Resource,
			Subresource: a.Subresource, Name: a.Name, ResourceRequest: true}
		if d, _, _ := e.Authorize(context.Background(), attrs); d == authorizer.DecisionDeny {
			denied[a.Resource] = true
		}
	}
	if !denied["groups"] || !denied["serviceaccounts"] {
		t.Errorf("denied grants %v: want groups (system:masters by name) and serviceaccounts (kube-system)", denied)
	}
	if denied["users"] {
		t.Errorf("impersonate users denied by a Deny on groups and service accounts")
	}
}
