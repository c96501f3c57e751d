package authz

import (
	"strings"
	"testing"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
)

// TestUnreached names each part of a policy the API server never asks the
// webhook about under the rendered wiring (its defaults, whose
// matchConditions TestMatchConditionsEvaluate evaluates), and nothing for
// a policy that applies whole.
func TestUnreached(t *testing.T) {
	x, err := apiserverconfig.AuthorizationOptions{}.Exclusions()
	if err != nil {
		t.Fatal(err)
	}
	health := func(urls ...string) authzv1alpha1.Rule {
		return authzv1alpha1.Rule{NonResourceURLs: urls, Verbs: []string{"get"}}
	}
	for _, tc := range []struct {
		name     string
		subjects []authzv1alpha1.Subject
		rules    []authzv1alpha1.Rule
		want     []string // one substring per note, in order
	}{
		{name: "a user", subjects: []authzv1alpha1.Subject{userSubject("alice")}},
		{name: "everyone authenticated", subjects: []authzv1alpha1.Subject{groupSubject("system:authenticated")}},
		{name: "a service account", subjects: []authzv1alpha1.Subject{saSubject("default", "web")}},
		{name: "a control-plane component", subjects: []authzv1alpha1.Subject{userSubject("alice"), userSubject("system:kube-scheduler")},
			want: []string{`user "system:kube-scheduler" is never sent`}},
		{name: "the operator", subjects: []authzv1alpha1.Subject{saSubject("portcullis-system", "portcullis-controller-manager")},
			want: []string{`user "system:serviceaccount:portcullis-system:portcullis-controller-manager" is never sent`}},
		{name: "a kube-system service account", subjects: []authzv1alpha1.Subject{saSubject("kube-system", "replicaset-controller")},
			want: []string{`user "system:serviceaccount:kube-system:replicaset-controller" is never sent`}},
		{name: "every kube-system service account", subjects: []authzv1alpha1.Subject{saSubject("kube-system", "*")},
			want: []string{`namespace "kube-system" are never sent`}},
		{name: "kube-system's group", subjects: []authzv1alpha1.Subject{groupSubject("system:serviceaccounts:kube-system")},
			want: []string{`namespace "kube-system" are never sent`}},
		{name: "another namespace's service accounts", subjects: []authzv1alpha1.Subject{saSubject("kube-public", "*")}},
		{name: "system:masters", subjects: []authzv1alpha1.Subject{groupSubject("system:masters")},
			want: []string{`group "system:masters" is allowed by the API server before any authorizer`}},
		{name: "anonymous health probes", subjects: []authzv1alpha1.Subject{groupSubject("system:unauthenticated")},
			rules: []authzv1alpha1.Rule{health("/healthz", "/metrics"), health("/readyz/*"), health("/*"), health("/logs/*")},
			want:  []string{`nonResourceURLs "/healthz" does not apply`, `nonResourceURLs "/readyz/*" does not apply`, `nonResourceURLs "/*" does not apply`}},
		{name: "anonymous by user name", subjects: []authzv1alpha1.Subject{userSubject("system:anonymous")},
			rules: []authzv1alpha1.Rule{{NonResourceURLs: []string{"/version"}, Readonly: true}, {NonResourceURLs: []string{"/livez/ping"}, Verbs: []string{"*"}}},
			want:  []string{`nonResourceURLs "/version"`, `nonResourceURLs "/livez/ping"`}},
		{name: "anonymous, not a GET", subjects: []authzv1alpha1.Subject{userSubject("system:anonymous")},
			rules: []authzv1alpha1.Rule{{NonResourceURLs: []string{"/healthz"}, Verbs: []string{"post"}}}},
		{name: "anonymous, other paths", subjects: []authzv1alpha1.Subject{userSubject("system:anonymous")},
			rules: []authzv1alpha1.Rule{health("/healthzx", "/metrics", "/api/*"), everything}},
		{name: "authenticated users on the health endpoints", subjects: []authzv1alpha1.Subject{userSubject("nora")},
			rules: []authzv1alpha1.Rule{health("/healthz", "/readyz/*")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ap := accessPolicy("p", deny)
			ap.Spec.Subjects = tc.subjects
			if tc.rules != nil {
				ap.Spec.Rules = tc.rules
			}
			got := mustCompile(t, ap).Unreached(x)
			if len(got) != len(tc.want) {
				t.Fatalf("%d notes, want %d: %q", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("note %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}
