package admission

import (
	"fmt"
	"sync"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

func TestValidationRegistry(t *testing.T) {
	e := NewValidationEngine(testNamespaces)
	r := NewValidationRegistry(e)
	req := privilegedPod(t)
	deny := func(name string) *CompiledValidation {
		return mustCompileValidation(t, validationPolicy(name, "", match(), "false"))
	}
	check := func(step string, wantDenials, wantLoaded, wantFailed int) {
		t.Helper()
		res := e.Validate(ctx, req)
		if res.Err() != nil || len(res.Denials) != wantDenials {
			t.Errorf("%s: %d denials (err %v), want %d", step, len(res.Denials), res.Err(), wantDenials)
		}
		if l, f := e.Snapshot().Counts(); l != wantLoaded || f != wantFailed {
			t.Errorf("%s: snapshot counts %d loaded, %d failed; want %d, %d", step, l, f, wantLoaded, wantFailed)
		}
		if l, f := r.Counts(); l != wantLoaded || f != wantFailed {
			t.Errorf("%s: registry counts %d loaded, %d failed; want %d, %d", step, l, f, wantLoaded, wantFailed)
		}
	}

	gen := e.Snapshot().Generation
	r.Set("a", deny("a"))
	r.Set("broken", nil)
	if g := e.Snapshot().Generation; g != gen || e.Ready() {
		t.Errorf("published before MarkReady: generation %d, ready %v", g, e.Ready())
	}
	if !r.Has("a") || !r.Has("broken") || r.Has("other") {
		t.Errorf("Has: a %v, broken %v, other %v", r.Has("a"), r.Has("broken"), r.Has("other"))
	}
	if l, f := r.Counts(); l != 1 || f != 1 {
		t.Errorf("registry counts before MarkReady: %d, %d", l, f)
	}

	r.MarkReady()
	check("ready", 1, 1, 1)
	gen = e.Snapshot().Generation

	r.Set("broken", deny("broken"))
	check("broken fixed", 2, 2, 0)
	r.Set("a", nil)
	check("a broken", 1, 1, 1)
	if !r.Has("a") {
		t.Error("a policy that failed to compile is not Has")
	}
	r.Delete("a")
	r.Delete("never-existed")
	check("a deleted", 1, 1, 0)
	if r.Has("a") {
		t.Error("a deleted policy is Has")
	}
	if g := e.Snapshot().Generation; g != gen+3 {
		t.Errorf("generation = %d after three changes from %d", g, gen)
	}

	r.SetAll(map[string]*CompiledValidation{"x": deny("x"), "y": deny("y"), "z": nil})
	check("SetAll", 2, 2, 1)
	if r.Has("broken") {
		t.Error("SetAll kept a policy it was not given")
	}
	r.MarkReady()
	check("MarkReady again", 2, 2, 1)
}

func TestMutationRegistry(t *testing.T) {
	e := NewMutationEngine(testNamespaces)
	r := NewMutationRegistry(e)
	label := func(name string, order int32) *CompiledMutation {
		return mustCompileMutation(t, mutationPolicy(name, order, match(), setLabels(true, "by", name)))
	}
	r.SetAll(map[string]*CompiledMutation{"b": label("b", 0), "a": label("a", 1), "bad": nil})
	r.MarkReady()
	req := privilegedPod(t)
	res := e.Mutate(ctx, req)
	if fmt.Sprint(res.Matched) != "[b a]" {
		t.Errorf("Matched = %v, want [b a] (order, then name)", res.Matched)
	}
	if l, f := e.Snapshot().Counts(); l != 2 || f != 1 {
		t.Errorf("counts %d, %d", l, f)
	}
	r.Set("c", label("c", -1))
	r.Delete("a")
	if res := e.Mutate(ctx, req); fmt.Sprint(res.Matched) != "[c b]" {
		t.Errorf("Matched = %v, want [c b]", res.Matched)
	}
	if !r.Has("bad") || r.Has("a") {
		t.Errorf("Has: bad %v, a %v", r.Has("bad"), r.Has("a"))
	}
	if rules := e.Snapshot().Rules(); len(rules) != 1 {
		t.Errorf("Rules = %v, want the one pod rule", rules)
	}
}

// TestConcurrentUse runs requests while the registries change, for the
// race detector: snapshots are immutable and compiled policies shared.
func TestConcurrentUse(t *testing.T) {
	ve := NewValidationEngine(testNamespaces)
	vr := NewValidationRegistry(ve)
	me := NewMutationEngine(testNamespaces)
	mr := NewMutationRegistry(me)
	vr.MarkReady()
	mr.MarkReady()
	vps := make([]*CompiledValidation, 8)
	mps := make([]*CompiledMutation, 8)
	for i := range vps {
		vps[i] = mustCompileValidation(t, validationPolicy(fmt.Sprintf("v%d", i), admissionv1alpha1.ActionWarn, match(withConditions("!request.dryRun")), noPrivileged))
		mps[i] = mustCompileMutation(t, mixedMutationPolicies(8)[i])
	}

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pod := benchPod()
				meta(pod)["labels"].(map[string]any)["worker"] = fmt.Sprint(w, "-", i)
				req := podRequest(t, admissionv1.Create, pod, nil)
				if res := ve.Validate(ctx, req); res.Err() != nil {
					t.Error(res.Err())
					return
				}
				if res := me.Mutate(ctx, req); res.Err() != nil {
					t.Error(res.Err())
					return
				}
			}
		}()
	}
	for round := range 50 {
		i := round % len(vps)
		vr.Set(vps[i].Name, vps[i])
		mr.Set(mps[i].Name, mps[i])
		if round%3 == 0 {
			vr.Delete(vps[(i+1)%len(vps)].Name)
			mr.Delete(mps[(i+1)%len(mps)].Name)
		}
	}
	close(stop)
	wg.Wait()
}
