package authz

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// TestRuleMatching checks every rule form against requests: one Allow
// policy for alice with the rule, and the request either allowed (the rule
// matches) or not (no opinion).
func TestRuleMatching(t *testing.T) {
	type R = authzv1alpha1.Rule
	pods := func(verbs ...string) R { return R{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: verbs} }
	inNS := func(r R, ns ...string) R { r.Namespaces = ns; return r }
	resources := func(rs ...string) R { return R{APIGroups: []string{"*"}, Resources: rs, Verbs: []string{"*"}} }
	urls := func(verbs []string, u ...string) R { return R{NonResourceURLs: u, Verbs: verbs} }
	get := []string{"get"}

	tests := []struct {
		name string
		rule R
		req  authorizer.AttributesRecord
		want bool
	}{
		// namespaces
		{"namespaces omitted: a namespace", pods("get"), res("get", "a", "", "pods", "", "p"), true},
		{"namespaces omitted: cluster-scoped", resources("nodes"), res("get", "", "", "nodes", "", "n"), true},
		{`namespaces ["*"]: a namespace`, inNS(pods("get"), "*"), res("get", "a", "", "pods", "", "p"), true},
		{`namespaces ["*"]: cluster-scoped`, inNS(resources("nodes"), "*"), res("get", "", "", "nodes", "", "n"), true},
		{`namespaces [""]: cluster-scoped`, inNS(resources("nodes"), ""), res("get", "", "", "nodes", "", "n"), true},
		{`namespaces [""]: not a namespace`, inNS(pods("get"), ""), res("get", "a", "", "pods", "", "p"), false},
		{"namespaces listed: listed", inNS(pods("get"), "a", "b"), res("get", "b", "", "pods", "", "p"), true},
		{"namespaces listed: other", inNS(pods("get"), "a", "b"), res("get", "c", "", "pods", "", "p"), false},
		{"namespaces listed: not cluster-scoped", inNS(pods("list"), "a"), res("list", "", "", "pods", "", ""), false},
		{`namespaces ["", "a"]: cluster-scoped`, inNS(resources("*"), "", "a"), res("get", "", "", "nodes", "", "n"), true},
		{`namespaces ["", "a"]: a`, inNS(resources("*"), "", "a"), res("get", "a", "", "pods", "", "p"), true},
		// "" is cluster-scoped requests only: not a request without a
		// namespace that reaches into namespaces
		{`namespaces ["", "a"]: not a list of secrets across namespaces`, inNS(resources("*"), "", "a"), res("list", "", "", "secrets", "", ""), false},
		{`namespaces ["", "a"]: not a watch of secrets across namespaces`, inNS(resources("*"), "", "a"), res("watch", "", "", "secrets", "", ""), false},
		{`namespaces [""]: not a review of a get in any namespace`, inNS(resources("*"), ""), res("get", "", "", "secrets", "", "s"), false},
		{`namespaces [""]: not a review of every resource`, inNS(resources("*"), ""), res("get", "", "", "*", "", ""), false},
		{`namespaces [""]: not a review of every group`, inNS(R{APIGroups: []string{"*"}, Resources: []string{"nodes"}, Verbs: get}, ""), res("get", "", "*", "nodes", "", ""), false},
		{`namespaces [""]: not a list of a resource discovery has not seen`, inNS(resources("*"), ""), res("list", "", "new.example", "widgets", "", ""), false},
		{`namespaces [""]: a list of nodes`, inNS(resources("*"), ""), res("list", "", "", "nodes", "", ""), true},
		{`namespaces [""]: a list of Namespace objects`, inNS(resources("*"), ""), res("list", "", "", "namespaces", "", ""), true},
		{`namespaces [""]: impersonating a user`, inNS(R{APIGroups: []string{""}, Resources: []string{"users"}, Verbs: []string{"impersonate"}}, ""), res("impersonate", "", "", "users", "", "bob"), true},
		{`namespaces omitted: a list of secrets across namespaces`, resources("*"), res("list", "", "", "secrets", "", ""), true},
		{`namespaces ["*"]: a list of secrets across namespaces`, inNS(resources("*"), "*"), res("list", "", "", "secrets", "", ""), true},
		{"namespaces: many listed (set)", inNS(pods("get"), "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10"), res("get", "n9", "", "pods", "", "p"), true},
		{"namespaces: many listed, other", inNS(pods("get"), "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9", "n10"), res("get", "n11", "", "pods", "", "p"), false},

		// apiGroups
		{"core group", pods("get"), res("get", "a", "", "pods", "", "p"), true},
		{"core rule, other group", pods("get"), res("get", "a", "metrics.k8s.io", "pods", "", "p"), false},
		{"apps group", R{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: get}, res("get", "a", "apps", "deployments", "", "d"), true},
		{"apps rule, core request", R{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: get}, res("get", "a", "", "deployments", "", "d"), false},
		{"apps rule, extensions request", R{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: get}, res("get", "a", "extensions", "deployments", "", "d"), false},
		{"group *", R{APIGroups: []string{"*"}, Resources: []string{"deployments"}, Verbs: get}, res("get", "a", "extensions", "deployments", "", "d"), true},
		{"group * with others", R{APIGroups: []string{"apps", "*"}, Resources: []string{"deployments"}, Verbs: get}, res("get", "a", "x.io", "deployments", "", "d"), true},
		{"groups x resources: cross product", R{APIGroups: []string{"apps", "batch"}, Resources: []string{"deployments", "jobs"}, Verbs: get}, res("get", "a", "batch", "deployments", "", "d"), true},
		{"groups x resources: not listed", R{APIGroups: []string{"apps", "batch"}, Resources: []string{"deployments", "jobs"}, Verbs: get}, res("get", "a", "batch", "cronjobs", "", "d"), false},

		// resources and subresources
		{"pods: pods", resources("pods"), res("get", "a", "", "pods", "", "p"), true},
		{"pods: not pods/log", resources("pods"), res("get", "a", "", "pods", "log", "p"), false},
		{"pods: not services", resources("pods"), res("get", "a", "", "services", "", "s"), false},
		{"pods/log: pods/log", resources("pods/log"), res("get", "a", "", "pods", "log", "p"), true},
		{"pods/log: not pods", resources("pods/log"), res("get", "a", "", "pods", "", "p"), false},
		{"pods/log: not pods/exec", resources("pods/log"), res("create", "a", "", "pods", "exec", "p"), false},
		{"pods/*: pods/log", resources("pods/*"), res("get", "a", "", "pods", "log", "p"), true},
		{"pods/*: pods/exec", resources("pods/*"), res("create", "a", "", "pods", "exec", "p"), true},
		{"pods/*: not pods", resources("pods/*"), res("get", "a", "", "pods", "", "p"), false},
		{"pods/*: not services/proxy", resources("pods/*"), res("get", "a", "", "services", "proxy", "s"), false},
		{"*: pods", resources("*"), res("get", "a", "", "pods", "", "p"), true},
		{"*: pods/log", resources("*"), res("get", "a", "", "pods", "log", "p"), true},
		{"*/scale: deployments/scale", resources("*/scale"), res("update", "a", "apps", "deployments", "scale", "d"), true},
		{"*/scale: statefulsets/scale", resources("*/scale"), res("update", "a", "apps", "statefulsets", "scale", "s"), true},
		{"*/scale: not deployments", resources("*/scale"), res("update", "a", "apps", "deployments", "", "d"), false},
		{"*/scale: not deployments/status", resources("*/scale"), res("update", "a", "apps", "deployments", "status", "d"), false},
		{"*/*: any subresource", resources("*/*"), res("get", "a", "", "pods", "log", "p"), true},
		{"*/*: not a resource", resources("*/*"), res("get", "a", "", "pods", "", "p"), false},
		{"pods and pods/log: pods/log", resources("pods", "pods/log"), res("get", "a", "", "pods", "log", "p"), true},
		{`request resource "*": rule "*"`, resources("*"), res("get", "a", "", "*", "", ""), true},
		{`request resource "*": rule pods`, resources("pods"), res("get", "a", "", "*", "", ""), false},

		// resourceNames
		{"resourceNames: listed", R{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"a", "b"}, Verbs: []string{"*"}}, res("get", "ns", "", "configmaps", "", "b"), true},
		{"resourceNames: other", R{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"a", "b"}, Verbs: []string{"*"}}, res("get", "ns", "", "configmaps", "", "c"), false},
		{"resourceNames: list has no name", R{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"a"}, Verbs: []string{"*"}}, res("list", "ns", "", "configmaps", "", ""), false},
		{"resourceNames: create has no name", R{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"a"}, Verbs: []string{"*"}}, res("create", "ns", "", "configmaps", "", ""), false},
		{"resourceNames: subresource of a listed name", R{APIGroups: []string{""}, Resources: []string{"pods/log"}, ResourceNames: []string{"a"}, Verbs: get}, res("get", "ns", "", "pods", "log", "a"), true},
		{"resourceNames omitted: any name", pods("get"), res("get", "ns", "", "pods", "", "anything"), true},
		{"resourceNames omitted: no name", pods("list"), res("list", "ns", "", "pods", "", ""), true},

		// verbs
		{"verb listed", pods("get", "list"), res("list", "a", "", "pods", "", ""), true},
		{"verb not listed", pods("get"), res("list", "a", "", "pods", "", ""), false},
		{"verb *", pods("*"), res("deletecollection", "a", "", "pods", "", ""), true},
		{"readonly: get", R{APIGroups: []string{""}, Resources: []string{"pods"}, Readonly: true}, res("get", "a", "", "pods", "", "p"), true},
		{"readonly: list", R{APIGroups: []string{""}, Resources: []string{"pods"}, Readonly: true}, res("list", "a", "", "pods", "", ""), true},
		{"readonly: watch", R{APIGroups: []string{""}, Resources: []string{"pods"}, Readonly: true}, res("watch", "a", "", "pods", "", ""), true},
		{"readonly: not create", R{APIGroups: []string{""}, Resources: []string{"pods"}, Readonly: true}, res("create", "a", "", "pods", "", ""), false},
		{"readonly: not update", R{APIGroups: []string{""}, Resources: []string{"pods"}, Readonly: true}, res("update", "a", "", "pods", "", "p"), false},
		{"readonly: not patch", R{APIGroups: []string{""}, Resources: []string{"pods"}, Readonly: true}, res("patch", "a", "", "pods", "", "p"), false},
		{"readonly: not delete", R{APIGroups: []string{""}, Resources: []string{"pods"}, Readonly: true}, res("delete", "a", "", "pods", "", "p"), false},
		{"readonly: not deletecollection", R{APIGroups: []string{""}, Resources: []string{"pods"}, Readonly: true}, res("deletecollection", "a", "", "pods", "", ""), false},
		{"readonly: not proxy", R{APIGroups: []string{""}, Resources: []string{"pods/proxy"}, Readonly: true}, res("proxy", "a", "", "pods", "proxy", "p"), false},

		// non-resource URLs
		{"url exact", urls(get, "/healthz"), nonRes("get", "/healthz"), true},
		{"url exact: not a longer path", urls(get, "/healthz"), nonRes("get", "/healthz/ready"), false},
		{"url exact: not another path", urls(get, "/healthz", "/version"), nonRes("get", "/livez"), false},
		{"url exact: second listed", urls(get, "/healthz", "/version"), nonRes("get", "/version"), true},
		{"url exact: verb not listed", urls(get, "/healthz"), nonRes("post", "/healthz"), false},
		{"url prefix /apis/*: /apis/x", urls(get, "/apis/*"), nonRes("get", "/apis/x"), true},
		{"url prefix /apis/*: /apis/x/y", urls(get, "/apis/*"), nonRes("get", "/apis/x/y"), true},
		{"url prefix /apis/*: not /apis", urls(get, "/apis/*"), nonRes("get", "/apis"), false},
		{"url prefix /apis/*: not /api/v1", urls(get, "/apis/*"), nonRes("get", "/api/v1"), false},
		{"url prefix /healthz*: /healthz", urls(get, "/healthz*"), nonRes("get", "/healthz"), true},
		{"url prefix /healthz*: /healthz/etcd", urls(get, "/healthz*"), nonRes("get", "/healthz/etcd"), true},
		{"url *: anything", urls([]string{"*"}, "*"), nonRes("post", "/logs/x"), true},
		{"url readonly: get", R{NonResourceURLs: []string{"/metrics"}, Readonly: true}, nonRes("get", "/metrics"), true},
		{"url rule: not a resource request", urls([]string{"*"}, "*"), res("get", "a", "", "pods", "", "p"), false},
		{"resource rule: not a non-resource request", resources("*"), nonRes("get", "/healthz"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := readyEngine(t, nil, accessPolicy("p", allow, withRules(tc.rule)))
			r := decide(e, tc.req)
			want := authorizer.DecisionNoOpinion
			if tc.want {
				want = authorizer.DecisionAllow
			}
			if r.Decision != want {
				t.Errorf("decision = %v, want %v (reason %q, errors %v)", r.Decision, want, r.Reason, r.Errors)
			}
		})
	}
}

func TestNamespaceSelector(t *testing.T) {
	prod := &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}
	notDev := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "env", Operator: metav1.LabelSelectorOpIn, Values: []string{"prod", "staging"}},
	}}
	all := &metav1.LabelSelector{}
	tests := []struct {
		name string
		sel  *metav1.LabelSelector
		rule authzv1alpha1.Rule
		req  authorizer.AttributesRecord
		want bool
	}{
		{"matchLabels: matching namespace", prod, everything, res("delete", "prod", "", "pods", "", "p"), true},
		{"matchLabels: other namespace", prod, everything, res("delete", "dev", "", "pods", "", "p"), false},
		{"matchLabels: namespace without labels", prod, everything, res("delete", "bare", "", "pods", "", "p"), false},
		{"matchLabels: unknown namespace", prod, everything, res("delete", "nowhere", "", "pods", "", "p"), false},
		{"matchLabels: cluster-scoped", prod, everything, res("delete", "", "", "nodes", "", "n"), false},
		{"matchExpressions In: staging", notDev, everything, res("get", "staging", "", "pods", "", "p"), true},
		{"matchExpressions In: dev", notDev, everything, res("get", "dev", "", "pods", "", "p"), false},
		{"empty selector: any namespace", all, everything, res("get", "bare", "", "pods", "", "p"), true},
		// An empty selector restricts nothing, as a webhook's does.
		{"empty selector: cluster-scoped too", all, everything, res("get", "", "", "nodes", "", "n"), true},
		{"empty selector: any namespace, known or not", all, everything, res("get", "nowhere", "", "pods", "", "p"), true},
		{"with rule namespaces: both hold", prod, authzv1alpha1.Rule{Namespaces: []string{"prod", "dev"}, APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}, res("get", "prod", "", "pods", "", "p"), true},
		{"with rule namespaces: rule holds, selector not", prod, authzv1alpha1.Rule{Namespaces: []string{"prod", "dev"}, APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}, res("get", "dev", "", "pods", "", "p"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := readyEngine(t, testNamespaces, accessPolicy("p", allow, withSelector(tc.sel), withRules(tc.rule)))
			r := decide(e, tc.req)
			if got := r.Decision == authorizer.DecisionAllow; got != tc.want {
				t.Errorf("allowed = %v, want %v (decision %v, errors %v)", got, tc.want, r.Decision, r.Errors)
			}
		})
	}

	t.Run("no lister: an enforced Deny fails closed", func(t *testing.T) {
		e := readyEngine(t, nil, accessPolicy("d", deny, withSelector(prod)))
		r := decide(e, res("get", "prod", "", "pods", "", "p"))
		if r.Decision != authorizer.DecisionDeny || len(r.Errors) != 1 {
			t.Fatalf("got %v with errors %v, want Deny with one error", r.Decision, r.Errors)
		}
	})
}

func TestSubjects(t *testing.T) {
	saUser := func(ns, name string, groups ...string) user.Info {
		return &user.DefaultInfo{Name: "system:serviceaccount:" + ns + ":" + name, Groups: groups}
	}
	authenticatedSA := func(ns, name string) user.Info {
		return saUser(ns, name, "system:serviceaccounts", "system:serviceaccounts:"+ns, "system:authenticated")
	}
	tests := []struct {
		name    string
		subject authzv1alpha1.Subject
		user    user.Info
		want    bool
	}{
		{"User: same name", userSubject("bob"), &user.DefaultInfo{Name: "bob"}, true},
		{"User: other name", userSubject("bob"), &user.DefaultInfo{Name: "bobby"}, false},
		{"User: not a group of that name", userSubject("bob"), &user.DefaultInfo{Name: "x", Groups: []string{"bob"}}, false},
		{"Group: member", groupSubject("devs"), &user.DefaultInfo{Name: "x", Groups: []string{"system:authenticated", "devs"}}, true},
		{"Group: not a member", groupSubject("devs"), &user.DefaultInfo{Name: "x", Groups: []string{"ops"}}, false},
		{"Group: not a user of that name", groupSubject("devs"), &user.DefaultInfo{Name: "devs"}, false},
		{"ServiceAccount: that account", saSubject("ci", "builder"), authenticatedSA("ci", "builder"), true},
		{"ServiceAccount: same name, other namespace", saSubject("ci", "builder"), authenticatedSA("prod", "builder"), false},
		{"ServiceAccount: other account", saSubject("ci", "builder"), authenticatedSA("ci", "deployer"), false},
		{"ServiceAccount: a user named like the account", saSubject("ci", "builder"), &user.DefaultInfo{Name: "builder"}, false},
		{"ServiceAccount *: any account of the namespace", saSubject("ci", "*"), authenticatedSA("ci", "anything"), true},
		{"ServiceAccount *: an account without its groups", saSubject("ci", "*"), saUser("ci", "anything"), true},
		{"ServiceAccount *: a member of the namespace group", saSubject("ci", "*"), &user.DefaultInfo{Name: "x", Groups: []string{"system:serviceaccounts:ci"}}, true},
		{"ServiceAccount *: other namespace", saSubject("ci", "*"), authenticatedSA("prod", "anything"), false},
		{"ServiceAccount *: other namespace without groups", saSubject("ci", "*"), saUser("prod", "anything"), false},
		{"ServiceAccount *: namespace prefix", saSubject("ci", "*"), saUser("ci-2", "x"), false},
		{"ServiceAccount *: malformed user name", saSubject("ci", "*"), &user.DefaultInfo{Name: "system:serviceaccount:ci"}, false},
		{"ServiceAccount *: not a user named *", saSubject("ci", "*"), &user.DefaultInfo{Name: "system:serviceaccount:ci:*:x"}, false},
		{"Group system:serviceaccounts:NS: an account without its groups", groupSubject("system:serviceaccounts:ci"), saUser("ci", "x"), true},
		{"no user", userSubject("bob"), nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := readyEngine(t, nil, accessPolicy("p", allow, withSubjects(tc.subject)))
			a := res("get", "ns", "", "pods", "", "p")
			a.User = tc.user
			r := decide(e, a)
			if got := r.Decision == authorizer.DecisionAllow; got != tc.want {
				t.Errorf("allowed = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestABACExample is the example of the API server's ABAC documentation:
// bob may read pods in projectCaribou, and nothing else.
func TestABACExample(t *testing.T) {
	bob := &user.DefaultInfo{Name: "bob", Groups: []string{"system:authenticated"}}
	e := readyEngine(t, nil, accessPolicy("bob-reads-caribou-pods", allow,
		withSubjects(userSubject("bob")),
		withRules(authzv1alpha1.Rule{Namespaces: []string{"projectCaribou"}, APIGroups: []string{""}, Resources: []string{"pods"}, Readonly: true}),
	))
	tests := []struct {
		name string
		req  authorizer.AttributesRecord
		want authorizer.Decision
	}{
		{"get", as(bob, res("get", "projectCaribou", "", "pods", "", "p")), authorizer.DecisionAllow},
		{"list", as(bob, res("list", "projectCaribou", "", "pods", "", "")), authorizer.DecisionAllow},
		{"watch", as(bob, res("watch", "projectCaribou", "", "pods", "", "")), authorizer.DecisionAllow},
		{"create", as(bob, res("create", "projectCaribou", "", "pods", "", "")), authorizer.DecisionNoOpinion},
		{"update", as(bob, res("update", "projectCaribou", "", "pods", "", "p")), authorizer.DecisionNoOpinion},
		{"delete", as(bob, res("delete", "projectCaribou", "", "pods", "", "p")), authorizer.DecisionNoOpinion},
		{"get in another namespace", as(bob, res("get", "projectParrot", "", "pods", "", "p")), authorizer.DecisionNoOpinion},
		{"list across namespaces", as(bob, res("list", "", "", "pods", "", "")), authorizer.DecisionNoOpinion},
		{"get services", as(bob, res("get", "projectCaribou", "", "services", "", "s")), authorizer.DecisionNoOpinion},
		{"get pods/log", as(bob, res("get", "projectCaribou", "", "pods", "log", "p")), authorizer.DecisionNoOpinion},
		{"alice", res("get", "projectCaribou", "", "pods", "", "p"), authorizer.DecisionNoOpinion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, reason, err := e.Authorize(t.Context(), tc.req)
			if d != tc.want || err != nil {
				t.Fatalf("Authorize = %v, %q, %v; want %v", d, reason, err, tc.want)
			}
			if d == authorizer.DecisionAllow && reason != `allowed by AccessPolicy "bob-reads-caribou-pods"` {
				t.Errorf("reason = %q", reason)
			}
		})
	}
}
