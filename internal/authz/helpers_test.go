package authz

import (
	"context"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// celCompiler is built once: building the CEL environment takes tens of
// milliseconds.
var celCompiler = sync.OnceValue(authorizationcel.NewDefaultCompiler)

const (
	allow = authzv1alpha1.EffectAllow
	deny  = authzv1alpha1.EffectDeny
)

func userSubject(name string) authzv1alpha1.Subject {
	return authzv1alpha1.Subject{Kind: authzv1alpha1.SubjectUser, Name: name}
}

func groupSubject(name string) authzv1alpha1.Subject {
	return authzv1alpha1.Subject{Kind: authzv1alpha1.SubjectGroup, Name: name}
}

func saSubject(ns, name string) authzv1alpha1.Subject {
	return authzv1alpha1.Subject{Kind: authzv1alpha1.SubjectServiceAccount, Namespace: ns, Name: name}
}

// everything is a resource rule for every verb on every resource.
var everything = authzv1alpha1.Rule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}

// policyOption changes an AccessPolicy under construction.
type policyOption func(*authzv1alpha1.AccessPolicy)

func withDryRun() policyOption {
	return func(p *authzv1alpha1.AccessPolicy) { p.Spec.Enforcement = authzv1alpha1.EnforcementDryRun }
}

func withSelector(sel *metav1.LabelSelector) policyOption {
	return func(p *authzv1alpha1.AccessPolicy) { p.Spec.NamespaceSelector = sel }
}

func withConditions(exprs ...string) policyOption {
	return func(p *authzv1alpha1.AccessPolicy) {
		for _, e := range exprs {
			p.Spec.Conditions = append(p.Spec.Conditions, authzv1alpha1.Condition{Expression: e})
		}
	}
}

func withSubjects(s ...authzv1alpha1.Subject) policyOption {
	return func(p *authzv1alpha1.AccessPolicy) { p.Spec.Subjects = s }
}

func withRules(r ...authzv1alpha1.Rule) policyOption {
	return func(p *authzv1alpha1.AccessPolicy) { p.Spec.Rules = r }
}

// accessPolicy is a policy for user alice on everything unless options say
// otherwise.
func accessPolicy(name string, effect authzv1alpha1.Effect, opts ...policyOption) *authzv1alpha1.AccessPolicy {
	p := &authzv1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1", Generation: 1},
		Spec: authzv1alpha1.AccessPolicySpec{
			Effect:   effect,
			Subjects: []authzv1alpha1.Subject{userSubject("alice")},
			Rules:    []authzv1alpha1.Rule{everything},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func mustCompile(tb testing.TB, ap *authzv1alpha1.AccessPolicy) *Policy {
	tb.Helper()
	p, errs := Compile(celCompiler(), ap)
	if len(errs) > 0 {
		tb.Fatalf("Compile(%s): %v", ap.Name, errs.ToAggregate())
	}
	return p
}

// readyEngine is a ready engine serving aps.
func readyEngine(tb testing.TB, ns NamespaceLister, aps ...*authzv1alpha1.AccessPolicy) *Engine {
	tb.Helper()
	e := NewEngine(ns, testScopes)
	r := NewRegistry(e)
	m := make(map[string]*Policy, len(aps))
	for _, ap := range aps {
		m[ap.Name] = mustCompile(tb, ap)
	}
	r.SetAll(m)
	r.MarkReady()
	return e
}

var alice = &user.DefaultInfo{Name: "alice", Groups: []string{"system:authenticated"}}

// res is a resource request by alice.
func res(verb, ns, group, resource, subresource, name string) authorizer.AttributesRecord {
	return authorizer.AttributesRecord{
		User: alice, Verb: verb, Namespace: ns, APIGroup: group, APIVersion: "v1",
		Resource: resource, Subresource: subresource, Name: name, ResourceRequest: true,
	}
}

// nonRes is a non-resource request by alice.
func nonRes(verb, path string) authorizer.AttributesRecord {
	return authorizer.AttributesRecord{User: alice, Verb: verb, Path: path}
}

// as is a with another user.
func as(u user.Info, a authorizer.AttributesRecord) authorizer.AttributesRecord {
	a.User = u
	return a
}

// testNamespaces is the namespace cache namespaceSelector tests read.
var testNamespaces = NamespaceLabels{
	"prod":    labels.Set{"env": "prod", "team": "caribou"},
	"staging": labels.Set{"env": "staging"},
	"dev":     labels.Set{"env": "dev"},
	"bare":    labels.Set{},
}

// testScopes says which resources of the tests are cluster-scoped; the
// others are namespaced.
var testScopes = ResourceScopeMap{
	{Resource: "nodes"}: false, {Resource: "namespaces"}: false,
	{Group: "rbac.authorization.k8s.io", Resource: "clusterroles"}: false,
	{Resource: "pods"}: true, {Resource: "secrets"}: true,
}

func decide(e *Engine, a authorizer.Attributes) Result {
	return e.Evaluate(context.Background(), a)
}
