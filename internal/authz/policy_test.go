package authz

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// fieldErr is the part of a field.Error a test checks.
type fieldErr struct {
	typ   field.ErrorType
	field string
}

func TestCompileErrors(t *testing.T) {
	type R = authzv1alpha1.Rule
	pods := R{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}
	rule := func(f func(*R)) policyOption {
		r := pods
		f(&r)
		return withRules(r)
	}
	set := func(f func(*authzv1alpha1.AccessPolicySpec)) policyOption {
		return func(p *authzv1alpha1.AccessPolicy) { f(&p.Spec) }
	}
	bad := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Near"}}}
	tests := []struct {
		name   string
		opts   []policyOption
		want   []fieldErr
		detail string // a substring of the first error's detail
	}{
		{"effect", []policyOption{set(func(s *authzv1alpha1.AccessPolicySpec) { s.Effect = "Maybe" })},
			[]fieldErr{{field.ErrorTypeNotSupported, "spec.effect"}}, ""},
		{"enforcement", []policyOption{set(func(s *authzv1alpha1.AccessPolicySpec) { s.Enforcement = "Audit" })},
			[]fieldErr{{field.ErrorTypeNotSupported, "spec.enforcement"}}, ""},

		// subjects
		{"no subjects", []policyOption{withSubjects()}, []fieldErr{{field.ErrorTypeRequired, "spec.subjects"}}, ""},
		{"subject without name", []policyOption{withSubjects(userSubject(""))}, []fieldErr{{field.ErrorTypeRequired, "spec.subjects[0].name"}}, ""},
		{"User with namespace", []policyOption{withSubjects(userSubject("bob"), authzv1alpha1.Subject{Kind: authzv1alpha1.SubjectUser, Name: "x", Namespace: "ns"})},
			[]fieldErr{{field.ErrorTypeForbidden, "spec.subjects[1].namespace"}}, ""},
		{"Group with namespace", []policyOption{withSubjects(authzv1alpha1.Subject{Kind: authzv1alpha1.SubjectGroup, Name: "x", Namespace: "ns"})},
			[]fieldErr{{field.ErrorTypeForbidden, "spec.subjects[0].namespace"}}, ""},
		{"ServiceAccount without namespace", []policyOption{withSubjects(saSubject("", "builder"))},
			[]fieldErr{{field.ErrorTypeRequired, "spec.subjects[0].namespace"}}, ""},
		{"ServiceAccount with a bad namespace", []policyOption{withSubjects(saSubject("Not_A_Namespace", "builder"))},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.subjects[0].namespace"}}, ""},
		{"ServiceAccount with a bad name", []policyOption{withSubjects(saSubject("ci", "a:b"))},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.subjects[0].name"}}, ""},
		{"ServiceAccount with a partial wildcard", []policyOption{withSubjects(saSubject("ci", "build-*"))},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.subjects[0].name"}}, ""},
		{"unknown kind", []policyOption{withSubjects(authzv1alpha1.Subject{Kind: "Robot", Name: "r2"})},
			[]fieldErr{{field.ErrorTypeNotSupported, "spec.subjects[0].kind"}}, ""},

		// rules: shape
		{"no rules", []policyOption{withRules()}, []fieldErr{{field.ErrorTypeRequired, "spec.rules"}}, ""},
		{"empty rule", []policyOption{withRules(R{Verbs: []string{"get"}})}, []fieldErr{{field.ErrorTypeRequired, "spec.rules[0]"}}, ""},
		{"nonResourceURLs with resources", []policyOption{rule(func(r *R) { r.NonResourceURLs = []string{"/healthz"} })},
			[]fieldErr{{field.ErrorTypeForbidden, "spec.rules[0].nonResourceURLs"}}, ""},
		{"resources without apiGroups", []policyOption{rule(func(r *R) { r.APIGroups = nil })},
			[]fieldErr{{field.ErrorTypeRequired, "spec.rules[0].apiGroups"}}, `[""]`},
		{"apiGroups without resources", []policyOption{rule(func(r *R) { r.Resources = nil })},
			[]fieldErr{{field.ErrorTypeRequired, "spec.rules[0].resources"}}, ""},
		{"neither verbs nor readonly", []policyOption{rule(func(r *R) { r.Verbs = nil })},
			[]fieldErr{{field.ErrorTypeRequired, "spec.rules[0].verbs"}}, ""},
		{"verbs and readonly", []policyOption{rule(func(r *R) { r.Readonly = true })},
			[]fieldErr{{field.ErrorTypeForbidden, "spec.rules[0].readonly"}}, ""},

		// rules: values
		{"empty verb", []policyOption{rule(func(r *R) { r.Verbs = []string{"get", ""} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].verbs[1]"}}, "empty"},
		{"upper-case verb", []policyOption{rule(func(r *R) { r.Verbs = []string{"GET"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].verbs[0]"}}, "lower case"},
		{"partial wildcard verb", []policyOption{rule(func(r *R) { r.Verbs = []string{"get*"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].verbs[0]"}}, ""},
		{"apiGroup with a version", []policyOption{rule(func(r *R) { r.APIGroups = []string{"apps/v1"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].apiGroups[0]"}}, "no version"},
		{"apiGroup partial wildcard", []policyOption{rule(func(r *R) { r.APIGroups = []string{"", "*.k8s.io"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].apiGroups[1]"}}, ""},
		{"empty resource", []policyOption{rule(func(r *R) { r.Resources = []string{"pods", ""} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].resources[1]"}}, "empty"},
		{"two subresources", []policyOption{rule(func(r *R) { r.Resources = []string{"pods/log/x"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].resources[0]"}}, ""},
		{"subresource without resource", []policyOption{rule(func(r *R) { r.Resources = []string{"/log"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].resources[0]"}}, `*/log`},
		{"resource without subresource", []policyOption{rule(func(r *R) { r.Resources = []string{"pods/"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].resources[0]"}}, `pods/*`},
		{"partial wildcard resource", []policyOption{rule(func(r *R) { r.Resources = []string{"po*"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].resources[0]"}}, ""},
		{"partial wildcard subresource", []policyOption{rule(func(r *R) { r.Resources = []string{"pods/lo*"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].resources[0]"}}, ""},
		{"upper-case resource", []policyOption{rule(func(r *R) { r.Resources = []string{"Pods"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].resources[0]"}}, "lower-case"},
		{"upper-case API group", []policyOption{rule(func(r *R) { r.APIGroups = []string{"Apps"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].apiGroups[0]"}}, "lower case"},
		{"empty resourceName", []policyOption{rule(func(r *R) { r.ResourceNames = []string{"a", ""} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].resourceNames[1]"}}, ""},
		{"partial wildcard namespace", []policyOption{rule(func(r *R) { r.Namespaces = []string{"team-*"} })},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].namespaces[0]"}}, "namespaceSelector"},

		// rules: non-resource
		{"URL without leading slash", []policyOption{withRules(R{NonResourceURLs: []string{"healthz"}, Verbs: []string{"get"}})},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].nonResourceURLs[0]"}}, `"/"`},
		{"URL with * inside", []policyOption{withRules(R{NonResourceURLs: []string{"/ok", "/apis/*/v1"}, Verbs: []string{"get"}})},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].nonResourceURLs[1]"}}, "last character"},
		{"empty URL", []policyOption{withRules(R{NonResourceURLs: []string{""}, Verbs: []string{"get"}})},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.rules[0].nonResourceURLs[0]"}}, ""},
		{"URL with namespaces", []policyOption{withRules(R{NonResourceURLs: []string{"/x"}, Namespaces: []string{"a"}, Verbs: []string{"get"}})},
			[]fieldErr{{field.ErrorTypeForbidden, "spec.rules[0].namespaces"}}, ""},
		{"URL with resourceNames", []policyOption{withRules(R{NonResourceURLs: []string{"/x"}, ResourceNames: []string{"a"}, Verbs: []string{"get"}})},
			[]fieldErr{{field.ErrorTypeForbidden, "spec.rules[0].resourceNames"}}, ""},

		// namespaceSelector
		{"bad namespaceSelector", []policyOption{withSelector(&bad)},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.namespaceSelector"}}, ""},
		{"namespaceSelector with a URL rule", []policyOption{withSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"team": "caribou"}}),
			withRules(pods, R{NonResourceURLs: []string{"/healthz"}, Verbs: []string{"get"}})},
			[]fieldErr{{field.ErrorTypeForbidden, "spec.rules[1].nonResourceURLs"}}, "never matches"},
		{"namespaceSelector with a cluster-scoped rule", []policyOption{withSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"team": "caribou"}}), rule(func(r *R) { r.Namespaces = []string{""} })},
			[]fieldErr{{field.ErrorTypeForbidden, "spec.rules[0].namespaces"}}, "never matches"},

		// conditions
		{"invalid CEL", []policyOption{withConditions("request.nope ==")},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.conditions[0].expression"}}, "compilation failed"},
		{"unknown field", []policyOption{withConditions(trueCondition, "request.resourceAttributes.color == 'red'")},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.conditions[1].expression"}}, "color"},
		{"not a bool", []policyOption{withConditions("request.user")},
			[]fieldErr{{field.ErrorTypeInvalid, "spec.conditions[0].expression"}}, "bool"},
		{"empty expression", []policyOption{withConditions("  ")},
			[]fieldErr{{field.ErrorTypeRequired, "spec.conditions[0].expression"}}, ""},
		{"duplicate expression", []policyOption{withConditions(trueCondition, trueCondition)},
			[]fieldErr{{field.ErrorTypeDuplicate, "spec.conditions[1].expression"}}, ""},

		// every error is reported
		{"several errors", []policyOption{
			withSubjects(saSubject("", "x"), userSubject("")),
			withRules(R{APIGroups: []string{""}, Resources: []string{""}, Verbs: []string{""}}, R{NonResourceURLs: []string{"healthz"}, Readonly: true}),
			withConditions("("),
		}, []fieldErr{
			{field.ErrorTypeRequired, "spec.subjects[0].namespace"},
			{field.ErrorTypeRequired, "spec.subjects[1].name"},
			{field.ErrorTypeInvalid, "spec.rules[0].verbs[0]"},
			{field.ErrorTypeInvalid, "spec.rules[0].resources[0]"},
			{field.ErrorTypeInvalid, "spec.rules[1].nonResourceURLs[0]"},
			{field.ErrorTypeInvalid, "spec.conditions[0].expression"},
		}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ap := accessPolicy("p", deny, tc.opts...)
			p, errs := Compile(celCompiler(), ap)
			if p != nil && p.Err() == nil {
				t.Errorf("Compile returned a policy without its errors")
			}
			var got []fieldErr
			for _, e := range errs {
				got = append(got, fieldErr{e.Type, e.Field})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("errors = %v\nwant %v\n(%v)", got, tc.want, errs.ToAggregate())
			}
			if tc.detail != "" && !strings.Contains(errs[0].Error(), tc.detail) {
				t.Errorf("error %q does not mention %q", errs[0].Error(), tc.detail)
			}
			if v := ValidateAccessPolicy(celCompiler(), ap); !reflect.DeepEqual(v, errs) {
				t.Errorf("ValidateAccessPolicy = %v, Compile = %v", v, errs)
			}
		})
	}
}

func TestCompileErrorNamesExpressionField(t *testing.T) {
	errs := ValidateAccessPolicy(celCompiler(), accessPolicy("p", allow, withConditions("request.resourceAttributes.name.startsWith(")))
	if msg := errs.ToAggregate().Error(); !strings.HasPrefix(msg, "spec.conditions[0].expression: Invalid value: ") {
		t.Errorf("message = %q; want it to start with the field path", msg)
	}
}

func TestCompileWithoutCompiler(t *testing.T) {
	if _, errs := Compile(nil, accessPolicy("p", allow)); len(errs) != 0 {
		t.Errorf("a policy without conditions needs no compiler: %v", errs)
	}
	_, errs := Compile(nil, accessPolicy("p", allow, withConditions(trueCondition)))
	if len(errs) != 1 || errs[0].Type != field.ErrorTypeInternal || errs[0].Field != "spec.conditions[0].expression" {
		t.Errorf("errors = %v; want one internal error at spec.conditions[0].expression", errs)
	}
	if _, errs := Compile(celCompiler(), nil); len(errs) != 1 {
		t.Errorf("nil policy: errors = %v", errs)
	}
}

func TestCompileValid(t *testing.T) {
	ap := &authzv1alpha1.AccessPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bob-reads-caribou-pods", UID: "u1", ResourceVersion: "42", Generation: 3},
		Spec: authzv1alpha1.AccessPolicySpec{
			Effect:      authzv1alpha1.EffectAllow,
			Enforcement: authzv1alpha1.EnforcementDryRun,
			Subjects: []authzv1alpha1.Subject{
				userSubject("bob"), userSubject("bob"), groupSubject("devs"),
				saSubject("ci", "builder"), saSubject("ci", "*"),
			},
			Rules: []authzv1alpha1.Rule{
				{Namespaces: []string{"projectCaribou"}, APIGroups: []string{""}, Resources: []string{"pods", "pods/log", "pods/*", "*/scale", "*/*", "*"}, Readonly: true},
				{NonResourceURLs: []string{"/healthz", "/version", "/apis/*", "*"}, Verbs: []string{"get"}},
				{APIGroups: []string{"", "apps", "*"}, Resources: []string{"deployments"}, ResourceNames: []string{"web"}, Verbs: []string{"*"}},
			},
			Conditions: []authzv1alpha1.Condition{{Expression: "request.resourceAttributes.name.startsWith('caribou-')", Message: "caribou only"}},
		},
	}
	p, errs := Compile(celCompiler(), ap)
	if len(errs) != 0 {
		t.Fatalf("Compile: %v", errs.ToAggregate())
	}
	if p.Name != ap.Name || p.UID != ap.UID || p.ResourceVersion != "42" || p.Generation != 3 || !p.DryRun || p.Effect != allow || !p.HasConditions() {
		t.Errorf("policy = %+v", p)
	}
	if want := []string{"bob", "system:serviceaccount:ci:builder"}; !slices.Equal(p.Users(), want) {
		t.Errorf("Users() = %v, want %v", p.Users(), want)
	}
	if want := []string{"devs", "system:serviceaccounts:ci"}; !slices.Equal(p.Groups(), want) {
		t.Errorf("Groups() = %v, want %v", p.Groups(), want)
	}
	if got := p.rules[2].apiGroups; !slices.Equal(got, []string{"*"}) {
		t.Errorf(`apiGroups with "*" compile to %v, want [*]`, got)
	}
	if p.reason != `allowed by AccessPolicy "bob-reads-caribou-pods": caribou only` {
		t.Errorf("reason = %q", p.reason)
	}
}

func TestParseResource(t *testing.T) {
	tests := []struct {
		in   string
		want resourceForm
	}{
		{"*", resourceForm{resource: "*", match: subEvery}},
		{"pods", resourceForm{resource: "pods", match: subNone}},
		{"pods/log", resourceForm{resource: "pods", match: subExact, subresource: "log"}},
		{"pods/*", resourceForm{resource: "pods", match: subAny}},
		{"*/scale", resourceForm{resource: "*", match: subExact, subresource: "scale"}},
		{"*/*", resourceForm{resource: "*", match: subAny}},
	}
	for _, tc := range tests {
		got, msg := parseResource(tc.in)
		if msg != "" || got != tc.want {
			t.Errorf("parseResource(%q) = %+v, %q; want %+v", tc.in, got, msg, tc.want)
		}
	}
}

func TestStringSet(t *testing.T) {
	many := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	tests := []struct {
		name                 string
		values               []string
		emptyIsAny, wildcard bool
		in, out              []string
	}{
		{"empty is any", nil, true, true, []string{"", "x"}, nil},
		{"empty is nothing", nil, false, true, nil, []string{"", "x"}},
		{"wildcard", []string{"a", "*"}, false, true, []string{"x", ""}, nil},
		{"literal star", []string{"a", "*"}, false, false, []string{"a", "*"}, []string{"x"}},
		{"small", []string{"a", "b", "a"}, false, true, []string{"a", "b"}, []string{"c", ""}},
		{"large", many, false, true, many, []string{"k", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStringSet(tc.values, tc.emptyIsAny, tc.wildcard)
			for _, v := range tc.in {
				if !s.has(v) {
					t.Errorf("has(%q) = false", v)
				}
			}
			for _, v := range tc.out {
				if s.has(v) {
					t.Errorf("has(%q) = true", v)
				}
			}
		})
	}
}

// TestEmptySelectorRestrictsNothing: the DESIGN.md example pairs
// namespaceSelector: {} with a nonResourceURLs rule; an empty selector
// selects everything, so it compiles.
func TestEmptySelectorRestrictsNothing(t *testing.T) {
	ap := accessPolicy("p", deny, withSelector(&metav1.LabelSelector{}),
		withRules(authzv1alpha1.Rule{NonResourceURLs: []string{"/healthz"}, Verbs: []string{"get"}}))
	if _, errs := Compile(celCompiler(), ap); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
}
