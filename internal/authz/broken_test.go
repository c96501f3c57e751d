package authz

import (
	"strings"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// A policy whose conditions no longer compile (an upgrade, or written past
// the operator's validation) is served broken, as one whose conditions
// cannot be evaluated: a Deny keeps denying what it covers, with the
// reason; an Allow allows nothing; one whose subjects or rules do not
// compile is not served at all.
func TestBrokenPoliciesFailClosed(t *testing.T) {
	brokenCEL := withConditions("request.resourceAttributes.namespace ==")
	for _, tc := range []struct {
		name   string
		policy *authzv1alpha1.AccessPolicy
		want   authorizer.Decision
		served bool
	}{
		{"a broken Deny denies", accessPolicy("d", deny, brokenCEL), authorizer.DecisionDeny, true},
		{"a broken Allow allows nothing", accessPolicy("a", allow, brokenCEL), authorizer.DecisionNoOpinion, true},
		{"unknown subjects: not served", accessPolicy("s", deny, brokenCEL, withSubjects(authzv1alpha1.Subject{Kind: "Robot", Name: "x"})), authorizer.DecisionNoOpinion, false},
		// A Deny whose rule does not compile is widened there: "GET" is
		// no verb the API server sends, so the rule covers every verb.
		{"a Deny with a bad verb denies", accessPolicy("d", deny, withRules(authzv1alpha1.Rule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"GET"}})), authorizer.DecisionDeny, true},
		{"an Allow with a bad verb: not served", accessPolicy("a", allow, withRules(authzv1alpha1.Rule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"GET"}})), authorizer.DecisionNoOpinion, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, errs := Compile(celCompiler(), tc.policy)
			if len(errs) == 0 {
				t.Fatal("compiled without errors")
			}
			if (p != nil) != tc.served || (p != nil && p.Err() == nil) {
				t.Fatalf("Compile = %v, errors %v; want served broken: %v", p, errs, tc.served)
			}
			e := NewEngine(nil, testScopes)
			r := NewRegistry(e)
			r.Set(tc.policy.Name, p)
			r.MarkReady()
			if l, f := e.Snapshot().Counts(); l != 0 || f != 1 {
				t.Errorf("counts %d loaded, %d failed; want 0, 1", l, f)
			}
			got := decide(e, res("get", "ns", "", "pods", "", "p"))
			if got.Decision != tc.want {
				t.Fatalf("decision %v (%s), want %v", got.Decision, got.Reason, tc.want)
			}
			if tc.want == authorizer.DecisionDeny && (!strings.Contains(got.Reason, `AccessPolicy "d"`) || !strings.Contains(got.Reason, "could not be loaded")) {
				t.Errorf("reason %q does not say which policy and why", got.Reason)
			}
			// Someone the policy is not for is not affected.
			other := res("get", "ns", "", "pods", "", "p")
			other.User = &user.DefaultInfo{Name: "bob"}
			if d := decide(e, other).Decision; d != authorizer.DecisionNoOpinion {
				t.Errorf("bob: %v, want NoOpinion", d)
			}
		})
	}
}
