package authz

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// fieldSel adds field-selector equality requirements ("metadata.name",
// "x", ...) to a request.
func fieldSel(a authorizer.AttributesRecord, kv ...string) authorizer.AttributesRecord {
	for i := 0; i+1 < len(kv); i += 2 {
		a.FieldSelectorRequirements = append(a.FieldSelectorRequirements, fields.Requirement{Operator: selection.Equals, Field: kv[i], Value: kv[i+1]})
	}
	return a
}

// TestDenyScope: a Deny covers every request whose answer includes what
// it denies (DESIGN.md, "Decisions that must hold"); the same rule as an
// Allow keeps RBAC's semantics.
func TestDenyScope(t *testing.T) {
	prodSecrets := authzv1alpha1.Rule{Namespaces: []string{"prod"}, APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"*"}}
	prodAll := authzv1alpha1.Rule{Namespaces: []string{"prod"}, APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}
	readProdSecrets := authzv1alpha1.Rule{Namespaces: []string{"prod"}, APIGroups: []string{""}, Resources: []string{"secrets"}, Readonly: true}
	readProdNamespaces := authzv1alpha1.Rule{Namespaces: []string{"prod"}, APIGroups: []string{""}, Resources: []string{"namespaces"}, Readonly: true}
	getProdSecrets := authzv1alpha1.Rule{Namespaces: []string{"prod"}, APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}
	named := authzv1alpha1.Rule{Namespaces: []string{"prod"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"db"}, Verbs: []string{"*"}}
	namedAnywhere := authzv1alpha1.Rule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"db"}, Verbs: []string{"*"}}
	allSecrets := authzv1alpha1.Rule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"*"}}
	prodSelector := &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}

	type tc struct {
		name string
		rule authzv1alpha1.Rule
		sel  *metav1.LabelSelector
		req  authorizer.AttributesRecord
		// denied is the Deny's answer; allowed is the same rule's as an
		// Allow (RBAC's semantics).
		denied, allowed bool
		// why is a part of the Deny's reason; a Deny that covers what the
		// Allow would not explains it.
		why string
	}
	tests := []tc{
		// Namespaces: list, watch and deletecollection across every
		// namespace include prod.
		{name: "get in prod", rule: prodSecrets, req: res("get", "prod", "", "secrets", "", "db"), denied: true, allowed: true},
		{name: "get in dev", rule: prodSecrets, req: res("get", "dev", "", "secrets", "", "db")},
		{name: "list in prod", rule: prodSecrets, req: res("list", "prod", "", "secrets", "", ""), denied: true, allowed: true},
		{name: "list in dev", rule: prodSecrets, req: res("list", "dev", "", "secrets", "", "")},
		{name: "list across namespaces", rule: prodSecrets, req: res("list", "", "", "secrets", "", ""), denied: true, why: "list across all namespaces includes the namespaces it denies secrets in"},
		{name: "watch across namespaces", rule: prodSecrets, req: res("watch", "", "", "secrets", "", ""), denied: true, why: "watch across all namespaces"},
		{name: "deletecollection across namespaces", rule: prodSecrets, req: res("deletecollection", "", "", "secrets", "", ""), denied: true, why: "deletecollection across all namespaces"},
		{name: "readonly rule: list across namespaces", rule: readProdSecrets, req: res("list", "", "", "secrets", "", ""), denied: true},
		{name: "get-only rule: list across namespaces is another verb", rule: getProdSecrets, req: res("list", "", "", "secrets", "", "")},
		// A review without a namespace, of any verb, asks about every
		// namespace (kubectl auth can-i --all-namespaces, an escalation
		// check): it includes prod.
		{name: "review: create in every namespace", rule: prodSecrets, req: res("create", "", "", "secrets", "", ""), denied: true, why: "create across all namespaces"},
		{name: "review: get of a name in every namespace", rule: prodSecrets, req: res("get", "", "", "secrets", "", "db"), denied: true},
		{name: "list across namespaces, other resource", rule: prodSecrets, req: res("list", "", "", "configmaps", "", "")},
		{name: "list of a cluster-scoped resource", rule: prodAll, req: res("list", "", "", "nodes", "", "")},
		{name: "list of another cluster-scoped resource", rule: prodAll, req: res("list", "", "rbac.authorization.k8s.io", "clusterroles", "", "")},
		{name: "list of an unknown resource is taken as namespaced", rule: prodAll, req: res("list", "", "example.com", "widgets", "", ""), denied: true},
		{name: "list across namespaces kept to dev by a field selector", rule: prodSecrets, req: fieldSel(res("list", "", "", "secrets", "", ""), "metadata.namespace", "dev")},
		{name: "list across namespaces kept to prod by a field selector", rule: prodSecrets, req: fieldSel(res("list", "", "", "secrets", "", ""), "metadata.namespace", "prod"), denied: true},
		{name: "a subresource in every namespace", rule: authzv1alpha1.Rule{Namespaces: []string{"prod"}, APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"*"}}, req: res("get", "", "", "pods", "log", "p"), denied: true},
		{name: "a subresource in another namespace", rule: authzv1alpha1.Rule{Namespaces: []string{"prod"}, APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"*"}}, req: res("get", "dev", "", "pods", "log", "p")},

		// resourceNames: a collection not restricted to other names
		// includes the named objects.
		{name: "named: get db", rule: named, req: res("get", "prod", "", "secrets", "", "db"), denied: true, allowed: true},
		{name: "named: get other", rule: named, req: res("get", "prod", "", "secrets", "", "other")},
		{name: "named: list in prod", rule: named, req: res("list", "prod", "", "secrets", "", ""), denied: true, why: "list not restricted to other names includes the secrets it denies by name"},
		{name: "named: watch in prod", rule: named, req: res("watch", "prod", "", "secrets", "", ""), denied: true},
		{name: "named: deletecollection in prod", rule: named, req: res("deletecollection", "prod", "", "secrets", "", ""), denied: true},
		{name: "named: list across namespaces", rule: named, req: res("list", "", "", "secrets", "", ""), denied: true},
		{name: "named: list in dev", rule: named, req: res("list", "dev", "", "secrets", "", "")},
		{name: "named: create without a name", rule: named, req: res("create", "prod", "", "secrets", "", "")},
		// A review of a verb on no name asks about every name.
		{name: "named: review of get on any name", rule: named, req: res("get", "prod", "", "secrets", "", ""), denied: true, why: "get not restricted to other names includes the secrets it denies by name"},
		{name: "named: review of delete on any name", rule: named, req: res("delete", "prod", "", "secrets", "", ""), denied: true},
		{name: "named: review of any name in another namespace", rule: named, req: res("delete", "dev", "", "secrets", "", "")},
		// The API server turns a metadata.name field selector into the name.
		{name: "named: list of db by name", rule: named, req: fieldSel(res("list", "prod", "", "secrets", "", "db"), "metadata.name", "db"), denied: true, allowed: true},
		{name: "named: list of another name", rule: named, req: fieldSel(res("list", "prod", "", "secrets", "", "other"), "metadata.name", "other")},
		{name: "named: field selector to another name without the name attribute", rule: named, req: fieldSel(res("list", "prod", "", "secrets", "", ""), "metadata.name", "other")},
		{name: "named: field selector to db without the name attribute", rule: named, req: fieldSel(res("list", "prod", "", "secrets", "", ""), "metadata.name", "db"), denied: true},
		{name: "named: an unreadable field selector restricts nothing", rule: named, req: func() authorizer.AttributesRecord {
			a := fieldSel(res("list", "prod", "", "secrets", "", ""), "metadata.name", "other")
			a.FieldSelectorParsingErr = errors.New("bad selector")
			return a
		}(), denied: true},
		{name: "named anywhere: list across namespaces", rule: namedAnywhere, req: res("list", "", "", "secrets", "", ""), denied: true},

		// An unrestricted rule matches as before.
		{name: "all secrets: list across namespaces", rule: allSecrets, req: res("list", "", "", "secrets", "", ""), denied: true, allowed: true},

		// namespaceSelector: a collection across namespaces includes the
		// selected ones.
		{name: "selector: get in prod", rule: allSecrets, sel: prodSelector, req: res("get", "prod", "", "secrets", "", "db"), denied: true, allowed: true},
		{name: "selector: get in dev", rule: allSecrets, sel: prodSelector, req: res("get", "dev", "", "secrets", "", "db")},
		{name: "selector: list across namespaces", rule: allSecrets, sel: prodSelector, req: res("list", "", "", "secrets", "", ""), denied: true, why: "list across all namespaces"},
		{name: "selector: watch across namespaces", rule: allSecrets, sel: prodSelector, req: res("watch", "", "", "secrets", "", ""), denied: true},
		{name: "selector: list across namespaces kept to dev", rule: allSecrets, sel: prodSelector, req: fieldSel(res("list", "", "", "secrets", "", ""), "metadata.namespace", "dev")},
		{name: "selector: list across namespaces kept to prod", rule: allSecrets, sel: prodSelector, req: fieldSel(res("list", "", "", "secrets", "", ""), "metadata.namespace", "prod"), denied: true},
		{name: "selector: list of a cluster-scoped resource", rule: everything, sel: prodSelector, req: res("list", "", "", "nodes", "", "")},

		// A review with a wildcard asks about every verb, group, resource,
		// subresource or path it stands for: it includes what the Deny
		// denies, while an Allow matches it only with a wildcard of its
		// own, as RBAC does.
		{name: "review: every verb", rule: getProdSecrets, req: res("*", "prod", "", "secrets", "", "db"), denied: true, why: "* of secrets"},
		{name: "review: every verb, another namespace", rule: getProdSecrets, req: res("*", "dev", "", "secrets", "", "db")},
		{name: "review: every resource of every group", rule: getProdSecrets, req: res("get", "prod", "*", "*", "", "db"), denied: true, why: `get of * in API group "*" includes what it denies`},
		{name: "review: every group", rule: getProdSecrets, req: res("get", "prod", "*", "secrets", "", "db"), denied: true},
		{name: "review: every resource of another group", rule: getProdSecrets, req: res("get", "prod", "apps", "*", "", "db")},
		{name: "review: every resource includes subresources", rule: authzv1alpha1.Rule{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create"}}, req: res("create", "a", "", "*", "", "p"), denied: true},
		{name: "review: every subresource", rule: authzv1alpha1.Rule{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create"}}, req: res("create", "a", "", "pods", "*", "p"), denied: true, allowed: false},
		{name: "review: every subresource is not the resource", rule: authzv1alpha1.Rule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}, req: res("create", "a", "", "pods", "*", "p")},
		{name: "review: everything everywhere", rule: getProdSecrets, req: res("*", "", "*", "*", "", ""), denied: true},
		{name: "review: wildcards matched by wildcards", rule: everything, req: res("*", "", "*", "*", "", ""), denied: true, allowed: true},
		{name: "review: every path", rule: authzv1alpha1.Rule{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}, req: nonRes("get", "*"), denied: true, why: "get * includes the paths it denies"},
		{name: "review: every path under /", rule: authzv1alpha1.Rule{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}, req: nonRes("get", "/*"), denied: true},
		{name: "review: every path under /api", rule: authzv1alpha1.Rule{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}, req: nonRes("get", "/api/*")},
		{name: "review: a prefix within the denied prefix", rule: authzv1alpha1.Rule{NonResourceURLs: []string{"/debug/*"}, Verbs: []string{"get"}}, req: nonRes("get", "/debug/pprof/*"), denied: true, allowed: true},
		{name: "review: a prefix around the denied prefix", rule: authzv1alpha1.Rule{NonResourceURLs: []string{"/debug/*"}, Verbs: []string{"get"}}, req: nonRes("get", "/de*"), denied: true},
		{name: "review: every verb on a path", rule: authzv1alpha1.Rule{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}, req: nonRes("*", "/metrics"), denied: true},
		{name: "review: every verb on another path", rule: authzv1alpha1.Rule{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}, req: nonRes("*", "/healthz")},

		// Without a namespace, another verb than a collection's is of
		// every namespace only for a resource known to be namespaced: the
		// API server sends one so only for cluster-scoped resources.
		{name: "get of an unknown resource without a namespace", rule: prodAll, req: res("get", "", "example.com", "widgets", "", "w")},
		{name: "create of a cluster-scoped resource", rule: prodAll, req: res("create", "", "rbac.authorization.k8s.io", "clusterroles", "", "")},
		{name: "review: every verb of an unknown resource in every namespace", rule: prodAll, req: res("*", "", "example.com", "widgets", "", ""), denied: true},
		{name: "review: get of every resource in every namespace", rule: prodAll, req: res("get", "", "", "*", "", ""), denied: true},

		// Impersonation's users and groups are cluster-scoped, though no
		// discovery lists them: a real impersonation has no namespace.
		{name: "impersonating a user is not in every namespace", rule: prodAll, req: res("impersonate", "", "", "users", "", "bob")},
		{name: "impersonating a group is not in every namespace", rule: prodAll, req: res("impersonate", "", "", "groups", "", "devs")},
		{name: "impersonating a uid is not in every namespace", rule: prodAll, req: res("impersonate", "", "authentication.k8s.io", "uids", "", "42")},
		{name: "impersonating a service account of prod", rule: prodAll, req: res("impersonate", "prod", "", "serviceaccounts", "", "ci"), denied: true, allowed: true},
		{name: "approving for a signer is not in every namespace", rule: prodAll, req: res("approve", "", "certificates.k8s.io", "signers", "", "example.com/x")},

		// A Namespace object is in itself: the API server gives a request
		// of namespace prod namespace prod, so a list or watch of them
		// includes prod unless it is kept to other names.
		{name: "namespaces: get of prod", rule: readProdNamespaces, req: res("get", "prod", "", "namespaces", "", "prod"), denied: true, allowed: true},
		{name: "namespaces: list", rule: readProdNamespaces, req: res("list", "", "", "namespaces", "", ""), denied: true, why: "list across all namespaces"},
		{name: "namespaces: watch of prod by name", rule: readProdNamespaces, req: fieldSel(res("watch", "", "", "namespaces", "", "prod"), "metadata.name", "prod"), denied: true},
		{name: "namespaces: list of dev by name", rule: readProdNamespaces, req: fieldSel(res("list", "", "", "namespaces", "", "dev"), "metadata.name", "dev")},
		{name: "namespaces: review of get prod without its namespace", rule: readProdNamespaces, req: res("get", "", "", "namespaces", "", "prod"), denied: true},
		{name: "namespaces: review of get dev without its namespace", rule: readProdNamespaces, req: res("get", "", "", "namespaces", "", "dev")},
		{name: "namespaces: create names no namespace yet", rule: authzv1alpha1.Rule{Namespaces: []string{"prod"}, APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"*"}}, req: res("create", "", "", "namespaces", "", "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, effect := range []authzv1alpha1.Effect{deny, allow} {
				e := readyEngine(t, testNamespaces, accessPolicy("p", effect, withRules(tc.rule), withSelector(tc.sel)))
				r := decide(e, tc.req)
				if len(r.Errors) > 0 {
					t.Fatalf("%s: errors %v", effect, r.Errors)
				}
				want, decision := tc.allowed, authorizer.DecisionAllow
				if effect == deny {
					want, decision = tc.denied, authorizer.DecisionDeny
				}
				if got := r.Decision == decision; got != want {
					t.Fatalf("%s: decision %v, want %v: %v", effect, r.Decision, map[bool]string{true: decision.String(), false: "NoOpinion"}[want], r.Reason)
				}
				if effect == deny && want {
					if !strings.HasPrefix(r.Reason, `denied by AccessPolicy "p"`) || !strings.Contains(r.Reason, tc.why) {
						t.Errorf("reason %q, want it to name the policy and say %q", r.Reason, tc.why)
					}
					// Only what RBAC's semantics would not match is explained.
					if widened := strings.Contains(r.Reason, " ("); widened == tc.allowed {
						t.Errorf("reason %q: explains a wider scope = %v, want %v", r.Reason, widened, !tc.allowed)
					}
				}
			}
		})
	}
}

// TestSelectorOnUnknownNamespaceFailsClosed: a namespace the cache has
// not seen cannot be judged, so a Deny denies with the reason and an Allow
// does not allow.
func TestSelectorOnUnknownNamespaceFailsClosed(t *testing.T) {
	sel := withSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}})
	req := res("get", "new-namespace", "", "pods", "", "p")

	r := decide(readyEngine(t, testNamespaces, accessPolicy("d", deny, sel)), req)
	if r.Decision != authorizer.DecisionDeny || len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Error(), `namespace "new-namespace" is not in the operator's namespace cache`) {
		t.Fatalf("Deny: %v %q, errors %v; want Deny with the unknown namespace named", r.Decision, r.Reason, r.Errors)
	}
	if !strings.Contains(r.Reason, "could not be evaluated") {
		t.Errorf("Deny reason %q does not say the policy could not be evaluated", r.Reason)
	}

	r = decide(readyEngine(t, testNamespaces, accessPolicy("a", allow, sel)), req)
	if r.Decision != authorizer.DecisionNoOpinion || len(r.Errors) != 1 {
		t.Fatalf("Allow: %v, errors %v; want NoOpinion with the error", r.Decision, r.Errors)
	}
}
