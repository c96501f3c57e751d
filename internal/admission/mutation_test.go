package admission

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/utils/ptr"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/admission/admissiontest"
)

// basePod is the object most mutation tests start from.
func basePod() map[string]any {
	p := podObject("p", map[string]string{"app": "web", "team": "moose"}, "app", "sidecar")
	p["metadata"].(map[string]any)["annotations"] = map[string]any{"owner": "someone"}
	p["spec"].(map[string]any)["enableServiceLinks"] = true
	p["spec"].(map[string]any)["tolerations"] = []any{map[string]any{"key": "a", "operator": "Exists"}}
	return p
}

// edit returns a copy of basePod changed by f.
func edit(f func(p map[string]any)) map[string]any {
	p := basePod()
	f(p)
	return p
}

func meta(p map[string]any) map[string]any { return p["metadata"].(map[string]any) }
func spec(p map[string]any) map[string]any { return p["spec"].(map[string]any) }

func TestMutationForms(t *testing.T) {
	anyPod := match()
	tests := []struct {
		name        string
		object      map[string]any // basePod when nil
		mutations   []admissionv1alpha1.Mutation
		want        map[string]any
		wantChanged bool
	}{
		{"setLabels adds", nil, []admissionv1alpha1.Mutation{setLabels(false, "env", "prod")},
			edit(func(p map[string]any) { meta(p)["labels"].(map[string]any)["env"] = "prod" }), true},
		{"setLabels keeps an existing value", nil, []admissionv1alpha1.Mutation{setLabels(false, "team", "caribou")},
			basePod(), false},
		{"setLabels overwrites", nil, []admissionv1alpha1.Mutation{setLabels(true, "team", "caribou")},
			edit(func(p map[string]any) { meta(p)["labels"].(map[string]any)["team"] = "caribou" }), true},
		{"setLabels with the same value", nil, []admissionv1alpha1.Mutation{setLabels(true, "team", "moose")},
			basePod(), false},
		{"setLabels creates metadata.labels", podObject("p", nil, "app"), []admissionv1alpha1.Mutation{setLabels(false, "env", "prod", "tier", "1")},
			func() map[string]any {
				p := podObject("p", nil, "app")
				meta(p)["labels"] = map[string]any{"env": "prod", "tier": "1"}
				return p
			}(), true},
		{"setAnnotations adds and keeps", nil, []admissionv1alpha1.Mutation{setAnnotations(false, "owner", "platform", "example.com/x", "y")},
			edit(func(p map[string]any) { meta(p)["annotations"].(map[string]any)["example.com/x"] = "y" }), true},
		{"setAnnotations overwrites", nil, []admissionv1alpha1.Mutation{setAnnotations(true, "owner", "platform")},
			edit(func(p map[string]any) { meta(p)["annotations"].(map[string]any)["owner"] = "platform" }), true},
		{"setAnnotations creates metadata.annotations", podObject("p", nil, "app"), []admissionv1alpha1.Mutation{setAnnotations(false, "owner", "platform")},
			func() map[string]any {
				p := podObject("p", nil, "app")
				meta(p)["annotations"] = map[string]any{"owner": "platform"}
				return p
			}(), true},
		{"jsonPatch add", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"add","path":"/spec/priorityClassName","value":"standard"}]`)},
			edit(func(p map[string]any) { spec(p)["priorityClassName"] = "standard" }), true},
		{"jsonPatch add an object", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"add","path":"/spec/securityContext","value":{"runAsNonRoot":true,"runAsUser":1000}}]`)},
			edit(func(p map[string]any) {
				spec(p)["securityContext"] = map[string]any{"runAsNonRoot": true, "runAsUser": 1000}
			}), true},
		{"jsonPatch add over an existing member replaces it", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"add","path":"/spec/enableServiceLinks","value":false}]`)},
			edit(func(p map[string]any) { spec(p)["enableServiceLinks"] = false }), true},
		{"jsonPatch add with an escaped key", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"add","path":"/metadata/labels/example.com~1tier","value":"gold"}]`)},
			edit(func(p map[string]any) { meta(p)["labels"].(map[string]any)["example.com/tier"] = "gold" }), true},
		{"jsonPatch replace", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"replace","path":"/spec/containers/1/image","value":"registry.example/sidecar:2.0"}]`)},
			edit(func(p map[string]any) {
				spec(p)["containers"].([]any)[1].(map[string]any)["image"] = "registry.example/sidecar:2.0"
			}), true},
		{"jsonPatch replace an array element", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"replace","path":"/spec/tolerations/0","value":{"key":"b","operator":"Exists"}}]`)},
			edit(func(p map[string]any) {
				spec(p)["tolerations"] = []any{map[string]any{"key": "b", "operator": "Exists"}}
			}), true},
		{"jsonPatch remove", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"remove","path":"/spec/enableServiceLinks"}]`)},
			edit(func(p map[string]any) { delete(spec(p), "enableServiceLinks") }), true},
		{"jsonPatch remove of a missing path does nothing", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"remove","path":"/spec/nodeName"},{"op":"remove","path":"/status/phase"}]`)},
			basePod(), false},
		{"jsonPatch test passes", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"test","path":"/metadata/labels/app","value":"web"},{"op":"add","path":"/spec/priorityClassName","value":"web"}]`)},
			edit(func(p map[string]any) { spec(p)["priorityClassName"] = "web" }), true},
		{"jsonPatch test fails: the patch is skipped", nil, []admissionv1alpha1.Mutation{
			jsonPatch(`[{"op":"add","path":"/spec/hostname","value":"h"},{"op":"test","path":"/metadata/labels/app","value":"db"},{"op":"add","path":"/spec/priorityClassName","value":"db"}]`),
			setLabels(false, "checked", "yes"),
		}, edit(func(p map[string]any) { meta(p)["labels"].(map[string]any)["checked"] = "yes" }), true},
		{"jsonPatch test of a missing path fails", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"test","path":"/spec/nodeName","value":"n"},{"op":"add","path":"/spec/hostname","value":"h"}]`)},
			basePod(), false},
		{"jsonPatch test", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"add","path":"/spec/priority","value":5},{"op":"test","path":"/spec/priority","value":5},{"op":"add","path":"/spec/hostname","value":"h"}]`)},
			edit(func(p map[string]any) { spec(p)["priority"] = 5; spec(p)["hostname"] = "h" }), true},
		// As the API server's library applies it, replace of a missing
		// member of an object sets it.
		{"jsonPatch replace of a missing member", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"replace","path":"/spec/hostname","value":"h"}]`)},
			edit(func(p map[string]any) { spec(p)["hostname"] = "h" }), true},
		{"jsonPatch copy", nil, []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"copy","from":"/metadata/labels/team","path":"/metadata/annotations/team"}]`)},
			edit(func(p map[string]any) { meta(p)["annotations"].(map[string]any)["team"] = "moose" }), true},
		{"mergePatch", nil, []admissionv1alpha1.Mutation{mergePatch(`{"spec":{"enableServiceLinks":false,"dnsPolicy":"Default"}}`)},
			edit(func(p map[string]any) { spec(p)["enableServiceLinks"] = false; spec(p)["dnsPolicy"] = "Default" }), true},
		{"mergePatch null deletes", nil, []admissionv1alpha1.Mutation{mergePatch(`{"metadata":{"annotations":{"owner":null}},"spec":{"enableServiceLinks":null}}`)},
			edit(func(p map[string]any) {
				meta(p)["annotations"] = map[string]any{}
				delete(spec(p), "enableServiceLinks")
			}), true},
		{"mergePatch replaces arrays whole", nil, []admissionv1alpha1.Mutation{mergePatch(`{"spec":{"tolerations":[{"key":"c","operator":"Exists"}]}}`)},
			edit(func(p map[string]any) {
				spec(p)["tolerations"] = []any{map[string]any{"key": "c", "operator": "Exists"}}
			}), true},
		{"mergePatch creates objects", nil, []admissionv1alpha1.Mutation{mergePatch(`{"spec":{"securityContext":{"runAsNonRoot":true,"gone":null}}}`)},
			edit(func(p map[string]any) { spec(p)["securityContext"] = map[string]any{"runAsNonRoot": true} }), true},
		{"mergePatch with nothing to change", nil, []admissionv1alpha1.Mutation{mergePatch(`{"spec":{"enableServiceLinks":true},"metadata":{"labels":{"gone":null}}}`)},
			basePod(), false},
		{"mergePatch null under a missing object creates it, as RFC 7386 says", nil, []admissionv1alpha1.Mutation{mergePatch(`{"status":{"phase":null}}`)},
			edit(func(p map[string]any) { p["status"] = map[string]any{} }), true},
		{"every form in one policy", nil, []admissionv1alpha1.Mutation{
			setLabels(false, "env", "prod"),
			setAnnotations(true, "owner", "platform"),
			jsonPatch(`[{"op":"add","path":"/spec/priorityClassName","value":"standard"}]`),
			mergePatch(`{"spec":{"enableServiceLinks":false}}`),
		}, edit(func(p map[string]any) {
			meta(p)["labels"].(map[string]any)["env"] = "prod"
			meta(p)["annotations"].(map[string]any)["owner"] = "platform"
			spec(p)["priorityClassName"] = "standard"
			spec(p)["enableServiceLinks"] = false
		}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			object := tt.object
			if object == nil {
				object = basePod()
			}
			e := mutationEngine(t, testNamespaces, mutationPolicy("m", 0, anyPod, tt.mutations...))
			req := podRequest(t, admissionv1.Create, object, nil)
			res := e.Mutate(ctx, req)
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			got := applyPatch(t, req.Object.Raw, res)
			if want := normalise(t, tt.want); !reflect.DeepEqual(any(got), want) {
				t.Errorf("mutated object:\n got %v\nwant %v\npatch %v", got, want, res.Patch)
			}
			if changed := len(res.Changed) > 0; changed != tt.wantChanged {
				t.Errorf("Changed = %v, want changed %v", res.Changed, tt.wantChanged)
			}
			if !tt.wantChanged && res.Patch != nil {
				t.Errorf("patch = %v, want none", res.Patch)
			}
			if !slices.Equal(res.Matched, []string{"m"}) {
				t.Errorf("Matched = %v", res.Matched)
			}

			// Idempotence: the policy applied to its own output changes
			// nothing.
			again := e.Mutate(ctx, podRequest(t, admissionv1.Update, got, object))
			if err := again.Err(); err != nil {
				t.Fatal(err)
			}
			if again.Patch != nil || len(again.Changed) > 0 {
				t.Errorf("applied again: patch %v, changed %v", again.Patch, again.Changed)
			}
		})
	}
}

func TestMutationOrder(t *testing.T) {
	anyPod := match()
	e := mutationEngine(t, testNamespaces,
		mutationPolicy("z-first", -5, anyPod, setLabels(true, "tier", "z-first")),
		mutationPolicy("b-second", 0, anyPod, setLabels(true, "tier", "b-second")),
		mutationPolicy("c-third", 0, anyPod, setLabels(true, "tier", "c-third")),
		mutationPolicy("a-last", 10, anyPod, setLabels(true, "tier", "a-last")),
		// Later policies see what earlier ones did: the condition and the
		// objectSelector read the label set before them.
		mutationPolicy("d-cond", 20, match(withConditions("object.metadata.labels.tier == 'a-last'")), setAnnotations(false, "saw", "a-last")),
		mutationPolicy("e-selector", 20, match(withObjectSelector(labelSelector("tier", "a-last"))), setAnnotations(false, "selected", "yes")),
		mutationPolicy("f-keeps", 30, anyPod, setLabels(false, "tier", "ignored")),
	)
	req := podRequest(t, admissionv1.Create, basePod(), nil)
	res := e.Mutate(ctx, req)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{"z-first", "b-second", "c-third", "a-last", "d-cond", "e-selector", "f-keeps"}
	if !slices.Equal(res.Matched, wantOrder) {
		t.Errorf("Matched = %v, want %v", res.Matched, wantOrder)
	}
	if want := wantOrder[:6]; !slices.Equal(res.Changed, want) {
		t.Errorf("Changed = %v, want %v", res.Changed, want)
	}
	got := applyPatch(t, req.Object.Raw, res)
	m := meta(got)
	if tier := m["labels"].(map[string]any)["tier"]; tier != "a-last" {
		t.Errorf("tier = %v, want a-last (the last to overwrite)", tier)
	}
	ann := m["annotations"].(map[string]any)
	if ann["saw"] != "a-last" || ann["selected"] != "yes" {
		t.Errorf("annotations = %v: later policies did not see the earlier mutations", ann)
	}
}

// mixedMutationPolicies are n matching policies of every static mutation
// form (celMutationPolicies are the CEL ones).
func mixedMutationPolicies(n int) []*admissionv1alpha1.MutationPolicy {
	var ps []*admissionv1alpha1.MutationPolicy
	for i := range n {
		name := "mutate-" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		var mu admissionv1alpha1.Mutation
		switch i % 4 {
		case 0:
			if i%8 == 0 {
				mu = setLabels(true, "label-"+name, "v"+name)
			} else {
				mu = setLabels(false, "label-"+name, "v"+name, "team", name)
			}
		case 1:
			mu = setAnnotations(true, "example.com/"+name, "value of "+name)
		case 2:
			mu = jsonPatch(`[{"op":"test","path":"/kind","value":"Pod"},` +
				`{"op":"add","path":"/spec/priorityClassName","value":"standard"},` +
				`{"op":"replace","path":"/spec/containers/0/imagePullPolicy","value":"IfNotPresent"}]`)
		default:
			mu = mergePatch(`{"spec":{"enableServiceLinks":false,"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}}},"metadata":{"annotations":{"` + name + `":"merged"}}}`)
		}
		ps = append(ps, mutationPolicy(name, int32(i%3), match(withRules(resourceRule("", "v1", []string{"pods"}, anyOp))), mu))
	}
	return ps
}

// benchPod is a pod with a few containers, as the benchmarks mutate and
// validate.
func benchPod() map[string]any { return admissiontest.Pod() }

func TestMutationIdempotence(t *testing.T) {
	// Policies that overwrite each other: each run rewrites what an
	// earlier policy wrote, so policies change the object on the way, but
	// the result is the same.
	conflicting := append(mixedMutationPolicies(8),
		mutationPolicy("tier-a", 5, match(), setLabels(true, "tier", "a"), jsonPatch(`[{"op":"add","path":"/spec/priorityClassName","value":"a"}]`)),
		mutationPolicy("tier-b", 6, match(), setLabels(true, "tier", "b"), mergePatch(`{"spec":{"priorityClassName":"b"}}`)),
	)
	tests := []struct {
		name     string
		policies []*admissionv1alpha1.MutationPolicy
		// quiet: no policy changes the object the second time, not even
		// on the way.
		quiet bool
	}{
		{"26 policies of every form", append(mixedMutationPolicies(20), celMutationPolicies(6)...), true},
		{"policies that overwrite each other", conflicting, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mutationEngine(t, testNamespaces, tt.policies...)
			original := benchPod()
			req := podRequest(t, admissionv1.Create, original, nil)
			res := e.Mutate(ctx, req)
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			if len(res.Matched) != len(tt.policies) || len(res.Patch) == 0 {
				t.Fatalf("matched %d, patch %v", len(res.Matched), res.Patch)
			}
			once := applyPatch(t, req.Object.Raw, res)
			again := e.Mutate(ctx, podRequest(t, admissionv1.Update, once, original))
			if err := again.Err(); err != nil {
				t.Fatal(err)
			}
			if again.Patch != nil {
				t.Errorf("the policy set applied to its own output changed it: %v", again.Patch)
			}
			if tt.quiet && len(again.Changed) > 0 {
				t.Errorf("applied again, policies %v changed the object on the way", again.Changed)
			}
		})
	}
}

func TestMutationErrors(t *testing.T) {
	tests := []struct {
		name    string
		mu      admissionv1alpha1.Mutation
		wantErr string
	}{
		// RFC 6902, as the API server's evanphx/json-patch applies it.
		{"remove of a missing path", jsonPatch(`[{"op":"remove","path":"/spec/nodeName"}]`), "Unable to remove nonexistent key: nodeName"},
		{"replace under a missing parent", jsonPatch(`[{"op":"replace","path":"/spec/securityContext/runAsUser","value":1}]`), "replace operation does not apply: doc is missing path: /spec/securityContext/runAsUser"},
		{"add under a missing parent", jsonPatch(`[{"op":"add","path":"/spec/securityContext/runAsUser","value":1}]`), `add operation does not apply: doc is missing path: "/spec/securityContext/runAsUser"`},
		{"CEL jsonPatch of a missing path", jsonPatchExpr(`[JSONPatch{op: "remove", path: "/spec/nodeName"}]`), "Unable to remove nonexistent key: nodeName"},
		{"CEL jsonPatch that does not evaluate", jsonPatchExpr(`[JSONPatch{op: "add", path: "/spec/x", value: object.spec.missing}]`), "no such key: missing"},
		{"applyConfiguration of an atomic list", applyConfiguration(`Object{spec: Object.spec{containers: [Object.spec.containers{name: "app", args: ["x"]}]}}`), "may not mutate atomic arrays"},
		// What the API server could not decode is the writer's error.
		{"labels is not an object", jsonPatch(`[{"op":"add","path":"/metadata/labels","value":"x"}]`), ".metadata.labels: expected map"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policies := []*admissionv1alpha1.MutationPolicy{
				// The failing mutation comes after one that applies: the
				// policy is rolled back as a whole.
				mutationPolicy("broken", 0, match(), setAnnotations(true, "half", "applied"), tt.mu),
				mutationPolicy("fine", 1, match(), setAnnotations(false, "fine", "yes")),
			}
			e := mutationEngine(t, testNamespaces, policies...)
			req := podRequest(t, admissionv1.Create, basePod(), nil)
			res := e.Mutate(ctx, req)
			if err := res.Err(); err != nil {
				t.Fatalf("Err() = %v: a policy's error is its failure policy's, not the call's", err)
			}
			if msg := res.Rejection(); !strings.Contains(msg, tt.wantErr) || !strings.Contains(msg, "failurePolicy Fail") {
				t.Fatalf("Rejection() = %q, want one containing %q", msg, tt.wantErr)
			}
			if len(res.Errors) != 1 {
				t.Fatalf("Errors = %v, want one", res.Errors)
			}
			// Under Ignore the failing policy is skipped, rolled back as a
			// whole, and the others apply.
			ignoring(policies[0])
			res = mutationEngine(t, testNamespaces, policies...).Mutate(ctx, req)
			if res.Rejection() != "" || len(res.WarningMessages()) != 1 || !strings.Contains(res.WarningMessages()[0], tt.wantErr) {
				t.Fatalf("under Ignore: rejection %q, warnings %v", res.Rejection(), res.WarningMessages())
			}
			got := applyPatch(t, req.Object.Raw, res)
			ann := meta(got)["annotations"].(map[string]any)
			if _, ok := ann["half"]; ok {
				t.Errorf("the failing policy was half-applied: %v", ann)
			}
			if ann["fine"] != "yes" {
				t.Errorf("the other policy was not applied: %v", ann)
			}
		})
	}
}

func TestMutateOnlyCreateAndUpdate(t *testing.T) {
	e := mutationEngine(t, testNamespaces, mutationPolicy("m", 0, match(withRules(resourceRule("*", "*", []string{"*/*"}, anyOp))), setLabels(false, "a", "b")))
	for _, rq := range []request{
		{op: admissionv1.Delete, kind: "Pod", resource: "pods", namespace: "caribou", name: "p", oldObject: obj(t, basePod())},
		{op: admissionv1.Connect, kind: "PodExecOptions", resource: "pods", subresource: "exec", namespace: "caribou", name: "p", object: obj(t, map[string]any{"kind": "PodExecOptions", "command": []string{"sh"}})},
	} {
		res := e.Mutate(ctx, rq.build())
		if res.Err() != nil || res.Patch != nil || len(res.Matched) > 0 {
			t.Errorf("%s: %+v, want nothing", rq.op, res)
		}
	}
	// A subresource update of a pod is mutated.
	rq := request{op: admissionv1.Update, kind: "Pod", resource: "pods", subresource: "status", namespace: "caribou", name: "p", object: obj(t, basePod()), oldObject: obj(t, basePod())}
	if res := e.Mutate(ctx, rq.build()); res.Err() != nil || len(res.Changed) != 1 {
		t.Errorf("pods/status: %+v, want a change", res)
	}
}

func TestMutationCompileErrors(t *testing.T) {
	tests := []struct {
		name      string
		mutations []admissionv1alpha1.Mutation
		wantField string
		wantText  string
	}{
		{"no mutations", nil, "spec.mutations", "Required"},
		{"empty mutation", []admissionv1alpha1.Mutation{{}}, "spec.mutations[0]", "exactly one"},
		{"two forms", []admissionv1alpha1.Mutation{{SetLabels: map[string]string{"a": "b"}, JSONPatch: &admissionv1alpha1.JSONPatch{Patch: `[]`}}}, "spec.mutations[0].jsonPatch", "exactly one"},
		{"overwrite with a patch", []admissionv1alpha1.Mutation{{JSONPatch: &admissionv1alpha1.JSONPatch{Patch: `[{"op":"remove","path":"/a"}]`}, Overwrite: true}}, "spec.mutations[0].overwrite", "setLabels and setAnnotations only"},
		{"empty setLabels", []admissionv1alpha1.Mutation{{SetLabels: map[string]string{}}}, "spec.mutations[0].setLabels", "at least one label"},
		{"bad label key", []admissionv1alpha1.Mutation{setLabels(false, "a b", "c")}, "spec.mutations[0].setLabels", "Invalid value"},
		{"bad label value", []admissionv1alpha1.Mutation{setLabels(false, "a", "not a value")}, "spec.mutations[0].setLabels", "Invalid value"},
		{"bad annotation key", []admissionv1alpha1.Mutation{setAnnotations(false, "a/b/c", "x")}, "spec.mutations[0].setAnnotations", "Invalid value"},
		{"jsonPatch not JSON", []admissionv1alpha1.Mutation{setLabels(false, "a", "b"), jsonPatch(`[{"op":`)}, "spec.mutations[1].jsonPatch", "not a JSON patch"},
		{"jsonPatch not an array", []admissionv1alpha1.Mutation{jsonPatch(`{"op":"add"}`)}, "spec.mutations[0].jsonPatch", "not a JSON patch"},
		{"jsonPatch empty", []admissionv1alpha1.Mutation{jsonPatch(`[]`)}, "spec.mutations[0].jsonPatch", "at least one operation"},
		{"jsonPatch unknown op", []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"merge","path":"/a"}]`)}, "spec.mutations[0].jsonPatch", `operation 0: unknown op "merge"`},
		{"jsonPatch without op", []admissionv1alpha1.Mutation{jsonPatch(`[{"path":"/a"}]`)}, "spec.mutations[0].jsonPatch", `"op" is required`},
		{"jsonPatch without path", []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"remove"}]`)}, "spec.mutations[0].jsonPatch", `"path" is required`},
		{"jsonPatch bad pointer", []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"remove","path":"spec/a"}]`)}, "spec.mutations[0].jsonPatch", `starts with "/"`},
		{"jsonPatch bad escape", []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"remove","path":"/a~2b"}]`)}, "spec.mutations[0].jsonPatch", `"~" is an escape`},
		{"jsonPatch root", []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"replace","path":"","value":{}}]`)}, "spec.mutations[0].jsonPatch", "whole object"},
		{"jsonPatch copy without from", []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"copy","path":"/spec/copy"}]`)}, "spec.mutations[0].jsonPatch", `needs a "from"`},
		{"jsonPatch add without value", []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"add","path":"/a"}]`)}, "spec.mutations[0].jsonPatch", `needs a "value"`},
		{"jsonPatch add null", []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"add","path":"/a","value":null}]`)}, "spec.mutations[0].jsonPatch", `use "remove"`},
		{"jsonPatch member names are exact", []admissionv1alpha1.Mutation{jsonPatch(`[{"OP":"remove","path":"/a"}]`)}, "spec.mutations[0].jsonPatch", `"op" is required`},
		{"jsonPatch op not a string", []admissionv1alpha1.Mutation{jsonPatch(`[{"op":1,"path":"/a"}]`)}, "spec.mutations[0].jsonPatch", `"op" is not a string`},
		{"jsonPatch operation not an object", []admissionv1alpha1.Mutation{jsonPatch(`["remove"]`)}, "spec.mutations[0].jsonPatch", "operation 0: not an operation object"},
		{"jsonPatch text after the array", []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"remove","path":"/a"}] []`)}, "spec.mutations[0].jsonPatch", "text after the array"},
		{"jsonPatch every error", []admissionv1alpha1.Mutation{jsonPatch(`[{"op":"move","path":"/b"},{"op":"remove","path":"/a"},{"op":"add","path":"/c/-"}]`)}, "spec.mutations[0].jsonPatch", "operation 2:"},
		{"jsonPatch both forms", []admissionv1alpha1.Mutation{{JSONPatch: &admissionv1alpha1.JSONPatch{Patch: `[]`, Expression: "[]"}}}, "spec.mutations[0].jsonPatch", "not both"},
		{"CEL jsonPatch not a list of JSONPatch", []admissionv1alpha1.Mutation{jsonPatchExpr(`"x"`)}, "spec.mutations[0].jsonPatch.expression", "must evaluate to"},
		{"CEL jsonPatch does not compile", []admissionv1alpha1.Mutation{jsonPatchExpr(`[JSONPatch{op: "add", path: "/a", value: object.`)}, "spec.mutations[0].jsonPatch.expression", "Syntax error"},
		{"applyConfiguration not an Object", []admissionv1alpha1.Mutation{applyConfiguration(`{"spec": 1}`)}, "spec.mutations[0].applyConfiguration.expression", "must evaluate to"},
		{"applyConfiguration empty", []admissionv1alpha1.Mutation{applyConfiguration(` `)}, "spec.mutations[0].applyConfiguration.expression", "Required"},
		{"applyConfiguration with authorizer", []admissionv1alpha1.Mutation{applyConfiguration(`authorizer.group("").resource("pods").check("get").allowed() ? Object{} : Object{}`)}, "spec.mutations[0].applyConfiguration.expression", "undeclared reference to 'authorizer'"},
		{"mergePatch not JSON", []admissionv1alpha1.Mutation{mergePatch(`{"a":`)}, "spec.mutations[0].mergePatch", "not JSON"},
		{"mergePatch an array", []admissionv1alpha1.Mutation{mergePatch(`[1]`)}, "spec.mutations[0].mergePatch", "not an array"},
		{"mergePatch empty", []admissionv1alpha1.Mutation{mergePatch(`{}`)}, "spec.mutations[0].mergePatch", "changes nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mutationPolicy("m", 0, match(), tt.mutations...)
			errs := ValidateMutationPolicy(testCompiler(), p)
			if !hasFieldError(errs, tt.wantField, tt.wantText) {
				t.Errorf("errors = %v, want one at %s containing %q", errs, tt.wantField, tt.wantText)
			}
			if c, cerrs := CompileMutationPolicy(testCompiler(), p); c == nil || c.Err() == nil || len(cerrs) == 0 {
				t.Errorf("CompileMutationPolicy = %v, %v: want a broken policy with its errors", c, cerrs)
			}
		})
	}
}

// TestJSONPatchAgainstRFC checks the operations RFC 6902 and this package
// agree on against an independent implementation.
func TestJSONPatchAgainstRFC(t *testing.T) {
	patches := []string{
		`[{"op":"add","path":"/spec/a","value":{"b":[1,2.5,"c",null,true]}}]`,
		`[{"op":"add","path":"/metadata/labels/x~1y~0z","value":"v"}]`,
		`[{"op":"replace","path":"/spec/containers/0/name","value":"renamed"}]`,
		`[{"op":"replace","path":"/spec/containers/1","value":{"name":"only"}}]`,
		`[{"op":"remove","path":"/metadata/annotations"}]`,
		`[{"op":"test","path":"/spec/containers/0/name","value":"app"},{"op":"remove","path":"/spec/enableServiceLinks"}]`,
		`[{"op":"copy","from":"/spec/containers","path":"/spec/initContainers"}]`,
		`[{"op":"copy","from":"/metadata/labels","path":"/spec/nodeSelector"},{"op":"add","path":"/spec/nodeSelector/extra","value":"1"}]`,
		// What the private dialect before RFC 6902 refused as not
		// idempotent.
		`[{"op":"add","path":"/spec/containers/-","value":{"name":"x"}}]`,
		`[{"op":"add","path":"/spec/containers/0","value":{"name":"first"}}]`,
		`[{"op":"move","from":"/metadata/labels","path":"/spec/nodeSelector"}]`,
		`[{"op":"copy","from":"/spec","path":"/spec/copy"}]`,
		`[{"op":"remove","path":"/spec/tolerations/0"}]`,
	}
	for _, s := range patches {
		t.Run(s, func(t *testing.T) {
			doc := obj(t, basePod())
			ops, errs := compileJSONPatch(s)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			d, err := decodeObject(doc)
			if err != nil {
				t.Fatal(err)
			}
			var log undoLog
			if err := applyJSONPatch(d.Object, ops, &log); err != nil {
				t.Fatal(err)
			}
			p, err := jsonpatchv5.DecodePatch([]byte(s))
			if err != nil {
				t.Fatal(err)
			}
			wantJSON, err := p.Apply(doc)
			if err != nil {
				t.Fatal(err)
			}
			var want any
			if err := json.Unmarshal(wantJSON, &want); err != nil {
				t.Fatal(err)
			}
			if got := normalise(t, d.Object); !reflect.DeepEqual(got, want) {
				t.Errorf("got  %v\nwant %v", got, want)
			}
			// Rolling back restores the document exactly.
			log.rollback(0)
			if got, orig := normalise(t, d.Object), normalise(t, basePod()); !reflect.DeepEqual(got, orig) {
				t.Errorf("after rollback %v, want %v", got, orig)
			}
		})
	}
}

// TestMutationSharesNoState checks that applying a policy does not write
// into its compiled values: a second request starts from the policy as
// compiled.
func TestMutationSharesNoState(t *testing.T) {
	e := mutationEngine(t, testNamespaces, mutationPolicy("m", 0, match(),
		mergePatch(`{"spec":{"securityContext":{"runAsNonRoot":true}}}`),
		jsonPatch(`[{"op":"add","path":"/spec/securityContext/runAsUser","value":1000},{"op":"add","path":"/spec/extra","value":{"list":[1]}},{"op":"replace","path":"/spec/extra/list/0","value":2}]`),
	))
	for i := range 2 {
		req := podRequest(t, admissionv1.Create, basePod(), nil)
		res := e.Mutate(ctx, req)
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		got := applyPatch(t, req.Object.Raw, res)
		if sc := spec(got)["securityContext"]; !reflect.DeepEqual(sc, map[string]any{"runAsNonRoot": true, "runAsUser": float64(1000)}) {
			t.Errorf("request %d: securityContext = %v", i, sc)
		}
		if x := spec(got)["extra"]; !reflect.DeepEqual(x, map[string]any{"list": []any{float64(2)}}) {
			t.Errorf("request %d: extra = %v", i, x)
		}
	}
}

func TestMutationPatchIsOneRFC6902Patch(t *testing.T) {
	e := mutationEngine(t, testNamespaces, mixedMutationPolicies(4)...)
	req := podRequest(t, admissionv1.Create, benchPod(), nil)
	res := e.Mutate(ctx, req)
	b, err := res.PatchJSON()
	if err != nil || len(b) == 0 {
		t.Fatalf("PatchJSON = %s, %v", b, err)
	}
	var ops []map[string]any
	if err := json.Unmarshal(b, &ops); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if _, ok := op["op"].(string); !ok {
			t.Errorf("operation without op: %v", op)
		}
	}
}

// Mutate's result is idempotent over the whole ordered set, as the API
// server's reinvocation needs: mutating what it produced changes nothing,
// even when a policy reads what a later one writes (it fails on the first
// pass, then applies) and policies overwrite each other.
func TestMutateIsIdempotent(t *testing.T) {
	policies := []*admissionv1alpha1.MutationPolicy{
		// Reads the label "tier" that "tiers" writes later in the order.
		ignoring(mutationPolicy("copy-tier", 0, match(), jsonPatch(`[{"op":"copy","from":"/metadata/labels/tier","path":"/metadata/annotations/tier"}]`))),
		mutationPolicy("tiers", 1, match(), setLabels(false, "tier", "web")),
		mutationPolicy("owner", 2, match(), setAnnotations(true, "owner", "platform")),
		mutationPolicy("owner-again", 3, match(), setAnnotations(true, "owner", "security")),
		mutationPolicy("links", 4, match(), mergePatch(`{"spec":{"enableServiceLinks":false,"dnsPolicy":"Default"}}`)),
		mutationPolicy("replace-links", 5, match(), jsonPatch(`[{"op":"test","path":"/spec/dnsPolicy","value":"Default"},{"op":"replace","path":"/spec/dnsPolicy","value":"ClusterFirst"}]`)),
	}
	e := mutationEngine(t, testNamespaces, policies...)
	req := podRequest(t, admissionv1.Create, basePod(), nil)
	first := e.Mutate(ctx, req)
	if first.Err() != nil || first.Rejection() != "" {
		t.Fatalf("first: %v %q", first.Err(), first.Rejection())
	}
	once := applyPatch(t, req.Object.Raw, first)
	if ann := meta(once)["annotations"].(map[string]any); ann["tier"] != "web" || ann["owner"] != "security" {
		t.Fatalf("after one call: annotations %v, want tier copied and owner overwritten in order", ann)
	}
	again := e.Mutate(ctx, podRequest(t, admissionv1.Create, once, nil))
	if again.Err() != nil || again.Rejection() != "" || again.Patch != nil {
		t.Fatalf("mutating the result again: patch %v, errors %v", again.Patch, again.Errors)
	}

	// One that can never settle is an error of its own, under its failure
	// policy, and the others still apply.
	// Each pass turns state a into b and b into a.
	state := func(name string, order int32, from, to string) *admissionv1alpha1.MutationPolicy {
		return mutationPolicy(name, order, match(), jsonPatch(`[{"op":"test","path":"/metadata/labels/state","value":"`+from+`"},{"op":"replace","path":"/metadata/labels/state","value":"`+to+`"}]`))
	}
	flip, flop := state("b-to-c", 7, "b", "c"), state("a-to-b", 8, "a", "b")
	back := state("c-to-a", 9, "c", "a")
	back.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	seed := mutationPolicy("seed", 6, match(), setLabels(false, "state", "a"))
	policies = append(policies, seed, flip, flop, back)
	res := mutationEngine(t, testNamespaces, policies...).Mutate(ctx, req)
	if len(res.Errors) == 0 || !strings.Contains(fmt.Sprint(res.Errors), "passes over the policies") {
		t.Fatalf("a pair that never settles: errors %v", res.Errors)
	}
}

// An Ignore policy that never settles is skipped whole, as its warning
// says: none of its passes' changes stays, the others' do, and the result
// is idempotent. Before, its last pass was kept, three appends of three.
func TestMutateSkipsAnUnsettledPolicyWhole(t *testing.T) {
	sidecar := ignoring(mutationPolicy("sidecar", 0, match(),
		jsonPatchExpr(`[JSONPatch{op: "add", path: "/spec/containers/-", value: Object.spec.containers{name: "sidecar-" + string(size(object.spec.containers)), image: "proxy"}}]`)))
	// Reads what sidecar writes: without it, it settles on the first pass.
	counts := mutationPolicy("counts", 1, match(), applyConfiguration(`Object{metadata: Object.metadata{labels: {"containers": string(size(object.spec.containers))}}}`))
	good := mutationPolicy("good", 2, match(), setLabels(false, "good", "yes"), mergePatch(`{"spec":{"enableServiceLinks":false}}`))
	e := mutationEngine(t, testNamespaces, sidecar, counts, good)
	req := podRequest(t, admissionv1.Create, basePod(), nil)
	res := e.Mutate(ctx, req)
	if err := res.Err(); err != nil || res.Rejection() != "" {
		t.Fatalf("Err %v, rejection %q", err, res.Rejection())
	}
	if w := res.WarningMessages(); len(w) != 1 || !strings.Contains(w[0], `"sidecar" was skipped`) || !strings.Contains(w[0], "passes over the policies") {
		t.Fatalf("warnings %q, want sidecar skipped for not settling", w)
	}
	if !slices.Equal(res.Matched, []string{"sidecar", "counts", "good"}) || !slices.Equal(res.Changed, []string{"counts", "good"}) {
		t.Errorf("matched %v, changed %v", res.Matched, res.Changed)
	}
	got := applyPatch(t, req.Object.Raw, res)
	want := normalise(t, edit(func(p map[string]any) {
		meta(p)["labels"].(map[string]any)["containers"] = "2"
		meta(p)["labels"].(map[string]any)["good"] = "yes"
		spec(p)["enableServiceLinks"] = false
	}))
	if !reflect.DeepEqual(any(got), want) {
		t.Fatalf("mutated object:\n got %v\nwant %v", got, want)
	}
	again := e.Mutate(ctx, podRequest(t, admissionv1.Update, got, basePod()))
	if again.Patch != nil || len(again.WarningMessages()) != 1 {
		t.Errorf("applied again: patch %v, warnings %q", again.Patch, again.WarningMessages())
	}
	// Under Fail it rejects, as before.
	sidecar.Spec.FailurePolicy = nil
	res = mutationEngine(t, testNamespaces, sidecar, counts, good).Mutate(ctx, req)
	if msg := res.Rejection(); !strings.Contains(msg, `"sidecar"`) || !strings.Contains(msg, "passes over the policies") {
		t.Fatalf("under Fail: Rejection() = %q", msg)
	}
}

// ignoring sets a policy's failurePolicy to Ignore.
func ignoring(p *admissionv1alpha1.MutationPolicy) *admissionv1alpha1.MutationPolicy {
	p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	return p
}

// Under Fail a policy's error in any pass rejects the request at once, as
// the API server rejects on a MutatingAdmissionPolicy's first error: a
// later policy making it match cleanly on a second pass does not forgive
// it. (Under Ignore, TestMutateIsIdempotent, it is retried.)
func TestMutateFailErrorIsFinal(t *testing.T) {
	reads := mutationPolicy("reads-tier", 0, match(withConditions("object.metadata.labels['tier'] == 'x'")), setLabels(true, "a", "b"))
	writes := mutationPolicy("writes-tier", 1, match(), setLabels(false, "tier", "web"))
	res := mutationEngine(t, testNamespaces, reads, writes).Mutate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	if msg := res.Rejection(); !strings.Contains(msg, `"reads-tier"`) || !strings.Contains(msg, "no such key") {
		t.Fatalf("Rejection() = %q, want reads-tier's pass-one error", msg)
	}
	ignoring(reads)
	res = mutationEngine(t, testNamespaces, reads, writes).Mutate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	if res.Rejection() != "" || len(res.Errors) != 0 {
		t.Fatalf("under Ignore, matching cleanly on the second pass: rejection %q, errors %v", res.Rejection(), res.Errors)
	}
}
