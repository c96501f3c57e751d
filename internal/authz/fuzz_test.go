package authz

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apiserver/pkg/authorization/authorizer"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// referenceMatch is the rule semantics written plainly, RBAC's
// PolicyRule matching plus "RESOURCE/*", without the index: the fuzz test
// checks the engine against it.
func referenceMatch(rule authzv1alpha1.Rule, a authorizer.AttributesRecord) bool {
	verbs := rule.Verbs
	if rule.Readonly {
		verbs = []string{"get", "list", "watch"}
	}
	if !slices.Contains(verbs, "*") && !slices.Contains(verbs, a.Verb) {
		return false
	}
	if !a.ResourceRequest {
		for _, u := range rule.NonResourceURLs {
			if u == "*" || u == a.Path || (strings.HasSuffix(u, "*") && strings.HasPrefix(a.Path, strings.TrimSuffix(u, "*"))) {
				return true
			}
		}
		return false
	}
	if len(rule.NonResourceURLs) > 0 {
		return false
	}
	if !slices.Contains(rule.APIGroups, "*") && !slices.Contains(rule.APIGroups, a.APIGroup) {
		return false
	}
	combined := a.Resource
	if a.Subresource != "" {
		combined += "/" + a.Subresource
	}
	resourceOK := false
	for _, r := range rule.Resources {
		if r == "*" || r == combined ||
			(a.Subresource != "" && (r == a.Resource+"/*" || r == "*/"+a.Subresource || r == "*/*")) {
			resourceOK = true
		}
	}
	if !resourceOK {
		return false
	}
	if len(rule.ResourceNames) > 0 && !slices.Contains(rule.ResourceNames, a.Name) {
		return false
	}
	if len(rule.Namespaces) == 0 || slices.Contains(rule.Namespaces, "*") {
		return true
	}
	// Without discovery (the engine below has none), a request without a
	// namespace is cluster-scoped as the API server sends one: not a
	// collection, nor of every resource or group, unless of Namespace
	// objects or of the virtual resources.
	if a.Namespace == "" {
		virtual := (a.APIGroup == "" && (a.Resource == "users" || a.Resource == "groups" || a.Resource == "namespaces")) ||
			(a.APIGroup == "authentication.k8s.io" && (a.Resource == "uids" || a.Resource == "userextras")) ||
			(a.APIGroup == "certificates.k8s.io" && a.Resource == "signers")
		collection := a.Verb == "*" || (a.Subresource == "" && (a.Verb == "list" || a.Verb == "watch" || a.Verb == "deletecollection"))
		if !virtual && (a.APIGroup == "*" || a.Resource == "*" || collection) {
			return false
		}
	}
	return slices.Contains(rule.Namespaces, a.Namespace)
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// FuzzRuleMatching compiles a rule from fuzzed fields and checks that,
// when it compiles, the indexed engine allows exactly the requests the
// reference semantics match.
func FuzzRuleMatching(f *testing.F) {
	type seed struct {
		verbs, groups, resources, names, namespaces, urls string
		readonly                                          bool
		verb, ns, group, resource, sub, name, path        string
		resourceRequest                                   bool
	}
	for _, s := range []seed{
		{"get", "", "pods", "", "", "", false, "get", "a", "", "pods", "", "p", "", true},
		{"", "*", "pods/*", "", "a,", "", true, "list", "", "apps", "pods", "log", "", "", true},
		{"*", "apps,", "*/scale,deployments", "d", "*", "", false, "update", "x", "apps", "deployments", "scale", "d", "", true},
		{"get,post", "", "", "", "", "/healthz,/apis/*,*", false, "post", "", "", "", "", "", "/apis/x", false},
		{"get", "*", "*", "a,b", "", "", false, "get", "n", "g", "*", "", "", "", true},
		{"get", "", "*/*", "", "", "", false, "get", "", "", "x", "y", "", "", true},
		{"list", "*", "*", "", ",a", "", false, "list", "", "", "secrets", "", "", "", true},
		{"get", "*", "*", "", "", "", false, "get", "", "*", "nodes", "", "", "", true},
		{"list", "", "namespaces", "", "", "", false, "list", "", "", "namespaces", "", "", "", true},
	} {
		f.Add(s.verbs, s.groups, s.resources, s.names, s.namespaces, s.urls, s.readonly,
			s.verb, s.ns, s.group, s.resource, s.sub, s.name, s.path, s.resourceRequest)
	}
	f.Fuzz(func(t *testing.T, verbs, groups, resources, names, namespaces, urls string, readonly bool,
		verb, ns, group, resource, sub, name, path string, resourceRequest bool) {
		rule := authzv1alpha1.Rule{
			Verbs: splitList(verbs), APIGroups: splitList(groups), Resources: splitList(resources),
			ResourceNames: splitList(names), Namespaces: splitList(namespaces), NonResourceURLs: splitList(urls),
			Readonly: readonly,
		}
		if len(rule.Resources) > 0 && rule.APIGroups == nil {
			rule.APIGroups = []string{""}
		}
		p, errs := Compile(nil, accessPolicy("p", allow, withRules(rule)))
		if len(errs) > 0 {
			return // refused; the table tests cover which
		}
		e := NewEngine(nil, nil)
		r := NewRegistry(e)
		r.Set("p", p)
		r.MarkReady()
		a := authorizer.AttributesRecord{User: alice, Verb: verb, Path: path}
		if resourceRequest {
			a = res(verb, ns, group, resource, sub, name)
		}
		got := decide(e, a).Decision == authorizer.DecisionAllow
		want := referenceMatch(rule, a)
		if got != want {
			t.Fatalf("rule %+v, request %+v: engine matches %v, reference %v", rule, a, got, want)
		}

		// The same rule as a Deny covers at least what RBAC's semantics
		// match, and more only for a request that asks about more than
		// one: a collection (list, watch, deletecollection), no namespace
		// or no name (a review), a wildcard verb, group, resource,
		// subresource or path (a review), or Namespace objects.
		dp, _ := Compile(nil, accessPolicy("p", deny, withRules(rule)))
		de := NewEngine(nil, nil)
		dr := NewRegistry(de)
		dr.Set("p", dp)
		dr.MarkReady()
		denied := decide(de, a).Decision == authorizer.DecisionDeny
		switch {
		case want && !denied:
			t.Fatalf("rule %+v, request %+v: the Allow matches, the Deny does not", rule, a)
		case denied && !want && !asksAboutMore(a):
			t.Fatalf("rule %+v, request %+v: the Deny covers more than RBAC's match for a request of one thing", rule, a)
		}
	})
}

// asksAboutMore reports whether a asks about more than one request in a
// way a Deny covers wholly when it covers any part: see request.
func asksAboutMore(a authorizer.AttributesRecord) bool {
	if a.Verb == wildcard {
		return true
	}
	if !a.ResourceRequest {
		return strings.HasSuffix(a.Path, wildcard)
	}
	return collectionVerbs[a.Verb] || a.Namespace == "" || (a.Name == "" && a.Verb != "create") ||
		a.APIGroup == wildcard || a.Resource == wildcard || a.Subresource == allSubresources || a.Resource == "namespaces"
}
