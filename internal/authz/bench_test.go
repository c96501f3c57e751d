package authz

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

// benchPolicies is the size of the benchmark's policy set, the design's
// budget point (20 µs per decision at 10,000 policies).
const benchPolicies = 10_000

// benchUnrelated builds unrelated policy i: its subject is a user, group,
// service account or whole service-account namespace nobody in the
// benchmark is, and its rules vary over every form the index files
// differently.
func benchUnrelated(i int) *authzv1alpha1.AccessPolicy {
	var sub authzv1alpha1.Subject
	switch i % 4 {
	case 0:
		sub = userSubject(fmt.Sprintf("user-%05d", i))
	case 1:
		sub = groupSubject(fmt.Sprintf("group-%05d", i))
	case 2:
		sub = saSubject(fmt.Sprintf("ns-%03d", i%500), fmt.Sprintf("sa-%05d", i))
	default:
		sub = saSubject(fmt.Sprintf("team-%05d", i), "*")
	}
	var rule authzv1alpha1.Rule
	switch i % 5 {
	case 0:
		rule = authzv1alpha1.Rule{Namespaces: []string{fmt.Sprintf("ns-%03d", i%500)}, APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}, Readonly: true}
	case 1:
		rule = authzv1alpha1.Rule{APIGroups: []string{"apps"}, Resources: []string{"deployments", "*/scale"}, Verbs: []string{"get", "update"}}
	case 2:
		rule = authzv1alpha1.Rule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"delete", "deletecollection"}}
	case 3:
		rule = authzv1alpha1.Rule{NonResourceURLs: []string{"/healthz", "/metrics*"}, Verbs: []string{"get"}}
	default:
		rule = authzv1alpha1.Rule{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}, ResourceNames: []string{fmt.Sprintf("cfg-%05d", i)}, Verbs: []string{"*"}}
	}
	effect := allow
	if i%7 == 0 {
		effect = deny
	}
	opts := []policyOption{withSubjects(sub), withRules(rule)}
	if i%11 == 0 {
		opts = append(opts, withDryRun())
	}
	if i%13 == 0 {
		opts = append(opts, withConditions("request.user.startsWith('user-')"))
	}
	return accessPolicy(fmt.Sprintf("unrelated-%05d", i), effect, opts...)
}

// benchRelated are bob's three policies; every other policy is unrelated.
func benchRelated() []*authzv1alpha1.AccessPolicy {
	return []*authzv1alpha1.AccessPolicy{
		accessPolicy("bob-reads-caribou-pods", allow, withSubjects(userSubject("bob")),
			withRules(authzv1alpha1.Rule{Namespaces: []string{"projectCaribou"}, APIGroups: []string{""}, Resources: []string{"pods"}, Readonly: true})),
		accessPolicy("bob-caribou-configmaps", allow, withSubjects(userSubject("bob")),
			withRules(authzv1alpha1.Rule{Namespaces: []string{"projectCaribou"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}),
			withConditions("request.resourceAttributes.name.startsWith('caribou-')")),
		accessPolicy("bob-no-prod-secrets", deny, withSubjects(userSubject("bob")),
			withRules(authzv1alpha1.Rule{Namespaces: []string{"prod"}, APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"*"}})),
	}
}

// benchSet is the compiled benchmark set, by name: compiling 10,000
// policies (770 with CEL) takes a while, so it is done once.
var benchSet = sync.OnceValue(func() map[string]*Policy {
	related := benchRelated()
	m := make(map[string]*Policy, benchPolicies)
	for _, ap := range related {
		p, errs := Compile(celCompiler(), ap)
		if len(errs) > 0 {
			panic(errs.ToAggregate())
		}
		m[ap.Name] = p
	}
	for i := 0; len(m) < benchPolicies; i++ {
		ap := benchUnrelated(i)
		p, errs := Compile(celCompiler(), ap)
		if len(errs) > 0 {
			panic(errs.ToAggregate())
		}
		m[ap.Name] = p
	}
	return m
})

var benchEngine = sync.OnceValue(func() *Engine {
	e := NewEngine(testNamespaces, nil)
	r := NewRegistry(e)
	r.SetAll(benchSet())
	r.MarkReady()
	return e
})

func BenchmarkAuthorize10kPolicies(b *testing.B) {
	e := benchEngine()
	if l, f := e.Snapshot().Counts(); l != benchPolicies || f != 0 {
		b.Fatalf("snapshot serves %d policies (%d failed), want %d", l, f, benchPolicies)
	}
	// bob is in system:authenticated and in one group that unrelated
	// policies name, so that his lookups find buckets to check.
	bob := &user.DefaultInfo{Name: "bob", Groups: []string{"system:authenticated", "group-00001", "group-00005"}}
	carol := &user.DefaultInfo{Name: "carol", Groups: []string{"system:authenticated"}}
	ctx := context.Background()
	for _, bm := range []struct {
		name string
		a    authorizer.AttributesRecord
		want authorizer.Decision
	}{
		{"allow", as(bob, res("get", "projectCaribou", "", "pods", "", "p")), authorizer.DecisionAllow},
		{"no-opinion", as(bob, res("delete", "projectCaribou", "", "pods", "", "p")), authorizer.DecisionNoOpinion},
		{"no-opinion-unknown-user", as(carol, res("get", "projectCaribou", "", "pods", "", "p")), authorizer.DecisionNoOpinion},
		{"no-opinion-non-resource", as(bob, nonRes("get", "/healthz")), authorizer.DecisionNoOpinion},
		{"cel-condition", as(bob, res("get", "projectCaribou", "", "configmaps", "", "caribou-settings")), authorizer.DecisionAllow},
		{"deny", as(bob, res("get", "prod", "", "secrets", "", "db")), authorizer.DecisionDeny},
		// A Deny limited to prod covers a list across every namespace.
		{"deny-list-all-namespaces", as(bob, res("list", "", "", "secrets", "", "")), authorizer.DecisionDeny},
	} {
		// Boxed once: the handler's conversion is not the engine's cost.
		var a authorizer.Attributes = bm.a
		b.Run(bm.name, func(b *testing.B) {
			if d, reason, err := e.Authorize(ctx, a); d != bm.want || err != nil {
				b.Fatalf("Authorize = %v, %q, %v; want %v", d, reason, err, bm.want)
			}
			b.ReportAllocs()
			for b.Loop() {
				_, _, _ = e.Authorize(ctx, a)
			}
		})
	}
	b.Run("allow-parallel", func(b *testing.B) {
		var a authorizer.Attributes = as(bob, res("get", "projectCaribou", "", "pods", "", "p"))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _, _ = e.Authorize(ctx, a)
			}
		})
	})
}

// BenchmarkRegistry10k measures publishing: a bulk load of 10,000
// policies, and one change once they are served (the incremental path).
func BenchmarkRegistry10k(b *testing.B) {
	set := benchSet()
	b.Run("SetAll+MarkReady", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := NewRegistry(NewEngine(nil, nil))
			r.SetAll(set)
			r.MarkReady()
		}
	})
	b.Run("Set-before-ready", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := NewRegistry(NewEngine(nil, nil))
			for name, p := range set {
				r.Set(name, p)
			}
			r.MarkReady()
		}
	})
	b.Run("Set-when-ready", func(b *testing.B) {
		r := NewRegistry(NewEngine(nil, nil))
		r.SetAll(set)
		r.MarkReady()
		p := set["bob-reads-caribou-pods"]
		b.ReportAllocs()
		for b.Loop() {
			r.Set(p.Name, p)
		}
	})
}
