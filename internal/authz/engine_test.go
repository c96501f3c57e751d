package authz

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

const (
	// failingCondition errors at run time for a request named "p": the
	// name is not a number.
	failingCondition = "int(request.resourceAttributes.name) > 0"
	trueCondition    = "request.user == 'alice'"
	falseCondition   = "request.user == 'nobody'"
)

func TestDecision(t *testing.T) {
	podGet := res("get", "ns", "", "pods", "", "p")
	type want struct {
		decision authorizer.Decision
		policy   string
		reason   string
		dryRun   []DryRunResult
		errors   []string // policy names, in order
		err      bool     // Authorize returns an error
	}
	tests := []struct {
		name     string
		policies []*authzv1alpha1.AccessPolicy
		req      authorizer.AttributesRecord
		want     want
	}{
		{
			name: "nothing matches: no opinion",
			policies: []*authzv1alpha1.AccessPolicy{
				accessPolicy("other-user", allow, withSubjects(userSubject("bob"))),
			},
			req:  podGet,
			want: want{decision: authorizer.DecisionNoOpinion},
		},
		{
			name:     "no policies: no opinion",
			req:      podGet,
			want:     want{decision: authorizer.DecisionNoOpinion},
			policies: nil,
		},
		{
			name:     "allow",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("a", allow)},
			req:      podGet,
			want:     want{decision: authorizer.DecisionAllow, policy: "a", reason: `allowed by AccessPolicy "a"`},
		},
		{
			name:     "deny",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("no-ns-delete", deny)},
			req:      podGet,
			want:     want{decision: authorizer.DecisionDeny, policy: "no-ns-delete", reason: `denied by AccessPolicy "no-ns-delete"`},
		},
		{
			name: "deny wins over allow",
			policies: []*authzv1alpha1.AccessPolicy{
				accessPolicy("a-allow", allow),
				accessPolicy("z-deny", deny),
			},
			req:  podGet,
			want: want{decision: authorizer.DecisionDeny, policy: "z-deny", reason: `denied by AccessPolicy "z-deny"`},
		},
		{
			name: "deny through a group wins over allow through the user",
			policies: []*authzv1alpha1.AccessPolicy{
				accessPolicy("allow-alice", allow),
				accessPolicy("deny-everyone", deny, withSubjects(groupSubject("system:authenticated"))),
			},
			req:  podGet,
			want: want{decision: authorizer.DecisionDeny, policy: "deny-everyone", reason: `denied by AccessPolicy "deny-everyone"`},
		},
		{
			name: "several denies: the first by name",
			policies: []*authzv1alpha1.AccessPolicy{
				accessPolicy("c-deny", deny),
				accessPolicy("a-deny", deny, withSubjects(groupSubject("system:authenticated"))),
				accessPolicy("b-deny", deny),
			},
			req:  podGet,
			want: want{decision: authorizer.DecisionDeny, policy: "a-deny", reason: `denied by AccessPolicy "a-deny"`},
		},
		{
			name: "several allows: the first by name",
			policies: []*authzv1alpha1.AccessPolicy{
				accessPolicy("b-allow", allow),
				accessPolicy("a-allow", allow, withSubjects(groupSubject("system:authenticated"))),
			},
			req:  podGet,
			want: want{decision: authorizer.DecisionAllow, policy: "a-allow", reason: `allowed by AccessPolicy "a-allow"`},
		},
		{
			name: "a deny that does not match leaves the allow",
			policies: []*authzv1alpha1.AccessPolicy{
				accessPolicy("allow", allow),
				accessPolicy("deny-delete", deny, withRules(authzv1alpha1.Rule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"delete"}})),
			},
			req:  podGet,
			want: want{decision: authorizer.DecisionAllow, policy: "allow", reason: `allowed by AccessPolicy "allow"`},
		},
		{
			name: "condition messages explain the decision",
			policies: []*authzv1alpha1.AccessPolicy{
				func() *authzv1alpha1.AccessPolicy {
					p := accessPolicy("no-alice", deny)
					p.Spec.Conditions = []authzv1alpha1.Condition{
						{Expression: trueCondition, Message: "alice is on leave"},
						{Expression: "request.resourceAttributes.verb == 'get'", Message: "even for reads"},
					}
					return p
				}(),
			},
			req:  podGet,
			want: want{decision: authorizer.DecisionDeny, policy: "no-alice", reason: `denied by AccessPolicy "no-alice": alice is on leave; even for reads`},
		},

		// DryRun
		{
			name: "DryRun deny is reported and does not deny",
			policies: []*authzv1alpha1.AccessPolicy{
				accessPolicy("allow", allow),
				accessPolicy("try-deny", deny, withDryRun()),
			},
			req: podGet,
			want: want{decision: authorizer.DecisionAllow, policy: "allow", reason: `allowed by AccessPolicy "allow"`,
				dryRun: []DryRunResult{{Policy: "try-deny", Would: WouldDeny}}},
		},
		{
			name:     "DryRun allow is reported and does not allow",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("try-allow", allow, withDryRun())},
			req:      podGet,
			want:     want{decision: authorizer.DecisionNoOpinion, dryRun: []DryRunResult{{Policy: "try-allow", Would: WouldAllow}}},
		},
		{
			name: "DryRun policies are reported alongside an enforced deny, by name",
			policies: []*authzv1alpha1.AccessPolicy{
				accessPolicy("z-try-allow", allow, withDryRun()),
				accessPolicy("deny", deny),
				accessPolicy("a-try-deny", deny, withDryRun()),
				accessPolicy("b-try-deny-later", deny, withDryRun(), withSubjects(groupSubject("system:authenticated"))),
			},
			req: podGet,
			want: want{decision: authorizer.DecisionDeny, policy: "deny", reason: `denied by AccessPolicy "deny"`,
				dryRun: []DryRunResult{{"a-try-deny", WouldDeny}, {"b-try-deny-later", WouldDeny}, {"z-try-allow", WouldAllow}}},
		},
		{
			name:     "DryRun policy whose conditions are false is not reported",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("try", deny, withDryRun(), withConditions(falseCondition))},
			req:      podGet,
			want:     want{decision: authorizer.DecisionNoOpinion},
		},
		{
			name:     "DryRun deny that fails to evaluate would deny; its error is reported, not returned",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("try", deny, withDryRun(), withConditions(failingCondition))},
			req:      podGet,
			want: want{decision: authorizer.DecisionNoOpinion, dryRun: []DryRunResult{{"try", WouldDeny}},
				errors: []string{"try"}},
		},
		{
			name:     "DryRun allow that fails to evaluate would not allow",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("try", allow, withDryRun(), withConditions(failingCondition))},
			req:      podGet,
			want:     want{decision: authorizer.DecisionNoOpinion, errors: []string{"try"}},
		},

		// Conditions
		{
			name:     "allow with a true condition",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("a", allow, withConditions(trueCondition))},
			req:      podGet,
			want:     want{decision: authorizer.DecisionAllow, policy: "a", reason: `allowed by AccessPolicy "a"`},
		},
		{
			name:     "allow with a false condition",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("a", allow, withConditions(falseCondition))},
			req:      podGet,
			want:     want{decision: authorizer.DecisionNoOpinion},
		},
		{
			name:     "all conditions must hold",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("a", allow, withConditions(trueCondition, falseCondition))},
			req:      podGet,
			want:     want{decision: authorizer.DecisionNoOpinion},
		},
		{
			name:     "a false condition wins over a failing one",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("d", deny, withConditions(failingCondition, falseCondition))},
			req:      podGet,
			want:     want{decision: authorizer.DecisionNoOpinion},
		},
		{
			name:     "condition on the resource name",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("a", allow, withConditions("request.resourceAttributes.name.startsWith('caribou-')"))},
			req:      res("get", "ns", "", "pods", "", "caribou-1"),
			want:     want{decision: authorizer.DecisionAllow, policy: "a", reason: `allowed by AccessPolicy "a"`},
		},
		{
			name:     "condition on the resource name, other name",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("a", allow, withConditions("request.resourceAttributes.name.startsWith('caribou-')"))},
			req:      res("get", "ns", "", "pods", "", "parrot-1"),
			want:     want{decision: authorizer.DecisionNoOpinion},
		},
		{
			name:     "deny that fails to evaluate denies, with the error",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("d", deny, withConditions(failingCondition))},
			req:      podGet,
			want: want{decision: authorizer.DecisionDeny, policy: "d", reason: `denied by AccessPolicy "d": its conditions could not be evaluated`,
				errors: []string{"d"}, err: true},
		},
		{
			name: "deny that fails to evaluate wins over an allow",
			policies: []*authzv1alpha1.AccessPolicy{
				accessPolicy("a", allow),
				accessPolicy("d", deny, withConditions(failingCondition)),
			},
			req: podGet,
			want: want{decision: authorizer.DecisionDeny, policy: "d", reason: `denied by AccessPolicy "d": its conditions could not be evaluated`,
				errors: []string{"d"}, err: true},
		},
		{
			name:     "allow that fails to evaluate does not allow",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("a", allow, withConditions(failingCondition))},
			req:      podGet,
			want:     want{decision: authorizer.DecisionNoOpinion, errors: []string{"a"}, err: true},
		},
		{
			name: "allow that fails to evaluate, then one that allows",
			policies: []*authzv1alpha1.AccessPolicy{
				accessPolicy("a", allow, withConditions(failingCondition)),
				accessPolicy("b", allow),
			},
			req:  podGet,
			want: want{decision: authorizer.DecisionAllow, policy: "b", reason: `allowed by AccessPolicy "b"`, errors: []string{"a"}, err: true},
		},
		{
			name: "condition on a non-resource request",
			policies: []*authzv1alpha1.AccessPolicy{accessPolicy("a", allow,
				withRules(authzv1alpha1.Rule{NonResourceURLs: []string{"*"}, Verbs: []string{"get"}}),
				withConditions("request.nonResourceAttributes.path == '/metrics'"))},
			req:  nonRes("get", "/metrics"),
			want: want{decision: authorizer.DecisionAllow, policy: "a", reason: `allowed by AccessPolicy "a"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := readyEngine(t, testNamespaces, tc.policies...)
			r := decide(e, tc.req)
			if r.Decision != tc.want.decision || r.Policy != tc.want.policy || r.Reason != tc.want.reason {
				t.Errorf("got %v by %q (%q), want %v by %q (%q)", r.Decision, r.Policy, r.Reason, tc.want.decision, tc.want.policy, tc.want.reason)
			}
			if !reflect.DeepEqual(r.DryRun, tc.want.dryRun) {
				t.Errorf("DryRun = %v, want %v", r.DryRun, tc.want.dryRun)
			}
			var errPolicies []string
			for _, pe := range r.Errors {
				errPolicies = append(errPolicies, pe.Policy)
				if pe.Err == nil {
					t.Errorf("error of %q is nil", pe.Policy)
				}
			}
			if !reflect.DeepEqual(errPolicies, tc.want.errors) {
				t.Errorf("errors from %v, want %v: %v", errPolicies, tc.want.errors, r.Errors)
			}

			d, reason, err := e.Authorize(context.Background(), tc.req)
			if d != r.Decision || reason != r.Reason {
				t.Errorf("Authorize = %v, %q; Evaluate = %v, %q", d, reason, r.Decision, r.Reason)
			}
			if (err != nil) != tc.want.err {
				t.Errorf("Authorize error = %v, want error: %v", err, tc.want.err)
			}
			if err != nil && !strings.Contains(err.Error(), `AccessPolicy "`) {
				t.Errorf("Authorize error %q does not name the policy", err)
			}
		})
	}
}

func TestNotReady(t *testing.T) {
	e := NewEngine(nil, nil)
	r := NewRegistry(e)
	r.Set("a", mustCompile(t, accessPolicy("a", deny)))
	for _, a := range []authorizer.AttributesRecord{res("delete", "ns", "", "pods", "", "p"), nonRes("get", "/healthz")} {
		d, reason, err := e.Authorize(context.Background(), a)
		if d != authorizer.DecisionNoOpinion || reason != ReasonNotReady || err != nil {
			t.Errorf("not ready: Authorize = %v, %q, %v; want NoOpinion, %q, nil", d, reason, err, ReasonNotReady)
		}
	}
	if e.Ready() {
		t.Error("Ready() = true before MarkReady")
	}
	r.MarkReady()
	if d, _, _ := e.Authorize(context.Background(), res("delete", "ns", "", "pods", "", "p")); d != authorizer.DecisionDeny {
		t.Errorf("ready: decision = %v, want Deny", d)
	}
}

func TestConditionsAwareAuthorize(t *testing.T) {
	e := readyEngine(t, nil, accessPolicy("d", deny))
	cd := e.ConditionsAwareAuthorize(context.Background(), res("get", "ns", "", "pods", "", "p"))
	if !cd.IsDeny() || cd.Reason() != `denied by AccessPolicy "d"` {
		t.Errorf("ConditionsAwareAuthorize = %v", cd)
	}
	if d, _, err := e.EvaluateConditions(context.Background(), cd, nil); d != authorizer.DecisionDeny || !errors.Is(err, authorizer.ErrorConditionEvaluationNotSupported) {
		t.Errorf("EvaluateConditions = %v, %v; want Deny, not supported", d, err)
	}
}

// countingUser counts GetExtra calls: SARFromAttributes makes one per
// review it builds, and nothing else in the engine calls it.
type countingUser struct {
	user.DefaultInfo
	extra *atomic.Int32
}

func (u *countingUser) GetExtra() map[string][]string {
	u.extra.Add(1)
	return u.DefaultInfo.GetExtra()
}

func TestSARBuiltLazilyOnce(t *testing.T) {
	tests := []struct {
		name     string
		policies []*authzv1alpha1.AccessPolicy
		want     int32
	}{
		{"no conditions", []*authzv1alpha1.AccessPolicy{accessPolicy("a", allow), accessPolicy("d", deny, withDryRun())}, 0},
		{"conditions on policies that do not match", []*authzv1alpha1.AccessPolicy{
			accessPolicy("a", allow, withSubjects(userSubject("bob")), withConditions(trueCondition)),
		}, 0},
		{"three policies with conditions", []*authzv1alpha1.AccessPolicy{
			accessPolicy("a", allow, withConditions(trueCondition)),
			accessPolicy("b", deny, withDryRun(), withConditions(trueCondition)),
			accessPolicy("c", deny, withConditions(falseCondition)),
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := readyEngine(t, nil, tc.policies...)
			u := &countingUser{DefaultInfo: user.DefaultInfo{Name: "alice"}, extra: new(atomic.Int32)}
			decide(e, as(u, res("get", "ns", "", "pods", "", "p")))
			if got := u.extra.Load(); got != tc.want {
				t.Errorf("SubjectAccessReviews built: %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSARFromAttributes(t *testing.T) {
	u := &user.DefaultInfo{Name: "alice", UID: "u-1", Groups: []string{"g1", "g2"}, Extra: map[string][]string{"scopes": {"a", "b"}}}
	labelReq, err := labels.NewRequirement("app", selection.In, []string{"web"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		a    authorizer.AttributesRecord
		want authorizationv1.SubjectAccessReviewSpec
	}{
		{
			name: "resource",
			a: authorizer.AttributesRecord{User: u, Verb: "list", Namespace: "ns", APIGroup: "apps", APIVersion: "v1",
				Resource: "deployments", Subresource: "scale", Name: "d", ResourceRequest: true,
				FieldSelectorRequirements: fields.Requirements{{Field: "spec.nodeName", Operator: selection.Equals, Value: "n1"}},
				LabelSelectorRequirements: labels.Requirements{*labelReq}},
			want: authorizationv1.SubjectAccessReviewSpec{
				User: "alice", UID: "u-1", Groups: []string{"g1", "g2"},
				Extra: map[string]authorizationv1.ExtraValue{"scopes": {"a", "b"}},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: "ns", Verb: "list", Group: "apps", Version: "v1", Resource: "deployments", Subresource: "scale", Name: "d",
					FieldSelector: &authorizationv1.FieldSelectorAttributes{Requirements: []metav1.FieldSelectorRequirement{
						{Key: "spec.nodeName", Operator: metav1.FieldSelectorOpIn, Values: []string{"n1"}}}},
					LabelSelector: &authorizationv1.LabelSelectorAttributes{Requirements: []metav1.LabelSelectorRequirement{
						{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web"}}}},
				},
			},
		},
		{
			name: "non-resource",
			a:    authorizer.AttributesRecord{User: u, Verb: "get", Path: "/healthz"},
			want: authorizationv1.SubjectAccessReviewSpec{
				User: "alice", UID: "u-1", Groups: []string{"g1", "g2"},
				Extra:                 map[string]authorizationv1.ExtraValue{"scopes": {"a", "b"}},
				NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/healthz", Verb: "get"},
			},
		},
		{
			name: "no user",
			a:    authorizer.AttributesRecord{Verb: "get", Path: "/healthz"},
			want: authorizationv1.SubjectAccessReviewSpec{NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/healthz", Verb: "get"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SARFromAttributes(tc.a).Spec; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SARFromAttributes =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestConditionSeesSelectors(t *testing.T) {
	e := readyEngine(t, nil, accessPolicy("a", allow, withConditions(
		"has(request.resourceAttributes.labelSelector) && request.resourceAttributes.labelSelector.requirements.exists(r, r.key == 'app')")))
	req, err := labels.NewRequirement("app", selection.Equals, []string{"web"})
	if err != nil {
		t.Fatal(err)
	}
	a := res("list", "ns", "", "pods", "", "")
	if d := decide(e, a).Decision; d != authorizer.DecisionNoOpinion {
		t.Errorf("without a label selector: %v, want NoOpinion", d)
	}
	a.LabelSelectorRequirements = labels.Requirements{*req}
	if r := decide(e, a); r.Decision != authorizer.DecisionAllow {
		t.Errorf("with a label selector: %v (%v), want Allow", r.Decision, r.Errors)
	}
}

func TestResultErr(t *testing.T) {
	r := Result{Errors: []PolicyError{
		{Policy: "a", Err: errors.New("boom")},
		{Policy: "b", DryRun: true, Err: errors.New("dry")},
	}}
	err := r.Err()
	if err == nil || !strings.Contains(err.Error(), `AccessPolicy "a": boom`) || strings.Contains(err.Error(), "dry") {
		t.Errorf("Err() = %v; want the enforced error only", err)
	}
	if (&Result{Errors: r.Errors[1:]}).Err() != nil {
		t.Error("Err() with DryRun errors only is not nil")
	}
	if got := r.Errors[1].Error(); got != `AccessPolicy "b" (DryRun): dry` {
		t.Errorf("DryRun error = %q", got)
	}
}
