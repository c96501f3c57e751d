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
		{name: "create has no namespace to widen", rule: prodSecrets, req: res("create", "", "", "secrets", "", "")},
		{name: "get of a cluster-scoped name", rule: prodSecrets, req: res("get", "", "", "secrets", "", "db")},
		{name: "list across namespaces, other resource", rule: prodSecrets, req: res("list", "", "", "configmaps", "", "")},
		{name: "list of a cluster-scoped resource", rule: prodAll, req: res("list", "", "", "nodes", "", "")},
		{name: "list of another cluster-scoped resource", rule: prodAll, req: res("list", "", "rbac.authorization.k8s.io", "clusterroles", "", "")},
		{name: "list of an unknown resource is taken as namespaced", rule: prodAll, req: res("list", "", "example.com", "widgets", "", ""), denied: true},
		{name: "list across namespaces kept to dev by a field selector", rule: prodSecrets, req: fieldSel(res("list", "", "", "secrets", "", ""), "metadata.namespace", "dev")},
		{name: "list across namespaces kept to prod by a field selector", rule: prodSecrets, req: fieldSel(res("list", "", "", "secrets", "", ""), "metadata.namespace", "prod"), denied: true},
		{name: "a subresource is not a collection", rule: authzv1alpha1.Rule{Namespaces: []string{"prod"}, APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"*"}}, req: res("list", "", "", "pods", "log", "")},

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
