package authz

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
)

func TestRegistry(t *testing.T) {
	e := NewEngine(nil, nil)
	r := NewRegistry(e)
	podGet := res("get", "ns", "", "pods", "", "p")
	check := func(step string, wantDecision authorizer.Decision, wantLoaded, wantFailed int) {
		t.Helper()
		if d := decide(e, podGet).Decision; d != wantDecision {
			t.Errorf("%s: decision = %v, want %v", step, d, wantDecision)
		}
		if l, f := e.Snapshot().Counts(); l != wantLoaded || f != wantFailed {
			t.Errorf("%s: counts = %d loaded, %d failed; want %d, %d", step, l, f, wantLoaded, wantFailed)
		}
	}

	gen := e.Snapshot().Generation
	r.Set("allow", mustCompile(t, accessPolicy("allow", allow)))
	r.Set("broken", nil)
	if g := e.Snapshot().Generation; g != gen+2 {
		t.Errorf("generation = %d after two changes from %d", g, gen)
	}
	check("before MarkReady", authorizer.DecisionNoOpinion, 1, 1)
	if !r.Has("allow") || !r.Has("broken") || r.Has("other") {
		t.Errorf("Has: allow %v, broken %v, other %v", r.Has("allow"), r.Has("broken"), r.Has("other"))
	}

	r.MarkReady()
	check("ready", authorizer.DecisionAllow, 1, 1)

	r.Set("broken", mustCompile(t, accessPolicy("broken", deny)))
	check("broken fixed into a deny", authorizer.DecisionDeny, 2, 0)

	r.Set("broken", mustCompile(t, accessPolicy("broken", deny, withSubjects(userSubject("bob")))))
	check("deny moved to bob", authorizer.DecisionAllow, 2, 0)

	r.Set("allow", nil)
	check("allow failed", authorizer.DecisionNoOpinion, 1, 1)
	if !r.Has("allow") {
		t.Error("a policy that failed to compile is not Has")
	}

	r.Delete("allow")
	r.Delete("never-existed")
	check("allow deleted", authorizer.DecisionNoOpinion, 1, 0)
	if r.Has("allow") {
		t.Error("deleted policy is still Has")
	}

	r.SetAll(map[string]*Policy{
		"d":      mustCompile(t, accessPolicy("d", deny)),
		"failed": nil,
	})
	check("SetAll", authorizer.DecisionDeny, 1, 1)
	if r.Has("broken") {
		t.Error("SetAll kept a policy it was not given")
	}
	r.MarkReady()
	check("MarkReady again", authorizer.DecisionDeny, 1, 1)
}

func TestSnapshotIsImmutable(t *testing.T) {
	e := NewEngine(nil, nil)
	r := NewRegistry(e)
	r.MarkReady()
	r.Set("a", mustCompile(t, accessPolicy("a", allow)))
	old := e.Snapshot()
	r.Set("b", mustCompile(t, accessPolicy("b", deny, withSubjects(userSubject("bob")))))
	r.Delete("a")
	if len(old.index.users) != 1 || old.index.users["alice"] == nil || old.index.users["bob"] != nil {
		t.Errorf("a published snapshot changed: users %v", old.index.users)
	}
}

// TestRegistryIncremental checks that the incrementally maintained index
// answers every request as an index built at once from the same policies.
func TestRegistryIncremental(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	subjects := []authzv1alpha1.Subject{
		userSubject("u0"), userSubject("u1"), groupSubject("g0"), groupSubject("g1"),
		saSubject("ns", "sa"), saSubject("ns", "*"), groupSubject("system:authenticated"),
	}
	rules := []authzv1alpha1.Rule{
		everything,
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "*/scale"}, Verbs: []string{"*"}, Namespaces: []string{"ns"}},
		{APIGroups: []string{"*"}, Resources: []string{"pods/*"}, Readonly: true},
		{NonResourceURLs: []string{"/healthz", "/apis/*"}, Verbs: []string{"get"}},
	}
	randomPolicy := func(name string) *Policy {
		effect := allow
		if rng.IntN(2) == 0 {
			effect = deny
		}
		var subs []authzv1alpha1.Subject
		for range 1 + rng.IntN(3) {
			subs = append(subs, subjects[rng.IntN(len(subjects))])
		}
		var rs []authzv1alpha1.Rule
		for range 1 + rng.IntN(2) {
			rs = append(rs, rules[rng.IntN(len(rules))])
		}
		opts := []policyOption{withSubjects(subs...), withRules(rs...)}
		if rng.IntN(4) == 0 {
			opts = append(opts, withDryRun())
		}
		return mustCompile(t, accessPolicy(name, effect, opts...))
	}
	users := []user.Info{
		&user.DefaultInfo{Name: "u0", Groups: []string{"g1", "system:authenticated"}},
		&user.DefaultInfo{Name: "u1"},
		&user.DefaultInfo{Name: "x", Groups: []string{"g0"}},
		&user.DefaultInfo{Name: "system:serviceaccount:ns:sa", Groups: []string{"system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"}},
		&user.DefaultInfo{Name: "system:serviceaccount:ns:other"},
	}
	requests := []authorizer.AttributesRecord{
		res("get", "ns", "", "pods", "", "p"),
		res("get", "ns", "", "pods", "log", "p"),
		res("update", "ns", "apps", "deployments", "scale", "d"),
		res("delete", "other", "apps", "deployments", "", "d"),
		nonRes("get", "/healthz"),
		nonRes("get", "/apis/apps"),
	}

	e := NewEngine(nil, nil)
	r := NewRegistry(e)
	model := map[string]*Policy{}
	for step := range 300 {
		name := fmt.Sprintf("p%d", rng.IntN(12))
		switch op := rng.IntN(10); {
		case op < 6:
			p := randomPolicy(name)
			r.Set(name, p)
			model[name] = p
		case op < 7:
			r.Set(name, nil)
			model[name] = nil
		default:
			r.Delete(name)
			delete(model, name)
		}
		if step == 20 {
			r.MarkReady()
		}
		if step < 20 {
			continue
		}
		want := NewEngine(nil, nil)
		wr := NewRegistry(want)
		wr.SetAll(model)
		wr.MarkReady()
		for _, u := range users {
			for _, a := range requests {
				a.User = u
				got, exp := decide(e, a), decide(want, a)
				if got.Decision != exp.Decision || got.Reason != exp.Reason || fmt.Sprint(got.DryRun) != fmt.Sprint(exp.DryRun) {
					t.Fatalf("step %d, %s %s %s/%s%s: incremental %v %q %v, full build %v %q %v", step, u.GetName(), a.Verb, a.Resource, a.Subresource, a.Path,
						got.Decision, got.Reason, got.DryRun, exp.Decision, exp.Reason, exp.DryRun)
				}
			}
		}
		gl, gf := e.Snapshot().Counts()
		wl, wf := want.Snapshot().Counts()
		if gl != wl || gf != wf {
			t.Fatalf("step %d: counts %d/%d, want %d/%d", step, gl, gf, wl, wf)
		}
	}
}

// TestRegistryConcurrent runs readers against a changing registry; run it
// with -race.
func TestRegistryConcurrent(t *testing.T) {
	e := NewEngine(nil, nil)
	r := NewRegistry(e)
	r.MarkReady()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, _, _ = e.Authorize(ctx, res("get", "ns", "", "pods", "", "p"))
				_, _, _ = e.Authorize(ctx, nonRes("get", "/healthz"))
			}
		})
	}
	for i := range 200 {
		name := fmt.Sprintf("p%d", i%7)
		switch i % 3 {
		case 0:
			r.Set(name, mustCompile(t, accessPolicy(name, deny, withConditions(trueCondition))))
		case 1:
			r.Set(name, mustCompile(t, accessPolicy(name, allow)))
		default:
			r.Delete(name)
		}
	}
	cancel()
	wg.Wait()
}
