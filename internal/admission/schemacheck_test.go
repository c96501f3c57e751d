package admission

import (
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// decodeAsTheAPIServer decodes a mutated pod as the API server decodes
// what a mutating webhook's patch made (webhook/mutating/dispatcher.go):
// an error there fails the whole request, whatever the failure policies.
func decodeAsTheAPIServer(tb testing.TB, object map[string]any) error {
	tb.Helper()
	raw, err := json.Marshal(object)
	if err != nil {
		tb.Fatal(err)
	}
	s := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme, kjson.SerializerOptions{})
	_, _, err = s.Decode(raw, nil, &corev1.Pod{})
	return err
}

// A policy whose result the API server could not decode is an error of
// that policy, under its own failure policy, rolled back; the others
// still apply. Before, the webhook returned the combined patch and the
// API server failed the whole request: an Ignore policy could reject it.
func TestMutationUnfitForTheSchema(t *testing.T) {
	tests := []struct {
		name  string
		mu    admissionv1alpha1.Mutation
		field string
	}{
		{"mergePatch", mergePatch(`{"spec":{"terminationGracePeriodSeconds":"30"}}`), ".spec.terminationGracePeriodSeconds: expected numeric"},
		{"jsonPatch", jsonPatch(`[{"op":"add","path":"/spec/terminationGracePeriodSeconds","value":"30"}]`), ".spec.terminationGracePeriodSeconds: expected numeric"},
		{"jsonPatch expression", jsonPatchExpr(`[JSONPatch{op: "add", path: "/spec/terminationGracePeriodSeconds", value: "30"}]`), ".spec.terminationGracePeriodSeconds: expected numeric"},
		{"in a list", jsonPatch(`[{"op":"add","path":"/spec/containers/0/ports","value":[{"containerPort":"80"}]}]`), `.spec.containers[name="app"].ports`},
		{"a list where an object is", mergePatch(`{"spec":{"securityContext":[1]}}`), ".spec.securityContext: expected map"},
		// The patcher converts an apply configuration to the kind's type
		// itself, as the API server's does.
		{"applyConfiguration", applyConfiguration(`Object{spec: Object.spec{terminationGracePeriodSeconds: "30"}}`), "terminationGracePeriodSeconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := mutationPolicy("bad", 0, match(), setAnnotations(true, "bad", "applied"), tt.mu)
			good := mutationPolicy("good", 1, match(), setLabels(false, "good", "yes"))
			req := podRequest(t, admissionv1.Create, basePod(), nil)

			res := mutationEngine(t, testNamespaces, bad, good).Mutate(ctx, req)
			if msg := res.Rejection(); !strings.Contains(msg, `MutationPolicy "bad"`) || !strings.Contains(msg, tt.field) {
				t.Fatalf("under Fail: Rejection() = %q, want bad's naming %q", msg, tt.field)
			}

			ignoring(bad)
			res = mutationEngine(t, testNamespaces, bad, good).Mutate(ctx, req)
			if err := res.Err(); err != nil || res.Rejection() != "" {
				t.Fatalf("under Ignore: Err %v, rejection %q", err, res.Rejection())
			}
			if w := res.WarningMessages(); len(w) != 1 || !strings.Contains(w[0], `"bad" was skipped`) || !strings.Contains(w[0], tt.field) {
				t.Fatalf("under Ignore: warnings %q, want bad skipped naming %q", w, tt.field)
			}
			got := applyPatch(t, req.Object.Raw, res)
			if err := decodeAsTheAPIServer(t, got); err != nil {
				t.Fatalf("the API server could not decode the mutated pod: %v", err)
			}
			if meta(got)["labels"].(map[string]any)["good"] != "yes" {
				t.Errorf("good's label was lost: %v", meta(got)["labels"])
			}
			if _, ok := meta(got)["annotations"].(map[string]any)["bad"]; ok {
				t.Errorf("bad was half-applied: %v", meta(got)["annotations"])
			}
			if _, ok := spec(got)["terminationGracePeriodSeconds"]; ok {
				t.Errorf("bad's value was kept: %v", spec(got))
			}
		})
	}
}

// A later policy is merged under the schema with an object that fits it:
// an earlier Ignore policy's wrong value would otherwise fail every
// applyConfiguration after it.
func TestApplyConfigurationAfterAnUnfitPolicy(t *testing.T) {
	bad := ignoring(mutationPolicy("bad", 0, match(), mergePatch(`{"spec":{"terminationGracePeriodSeconds":"30"}}`)))
	later := mutationPolicy("later", 1, match(), applyConfiguration(`Object{metadata: Object.metadata{labels: {"later": "yes"}}}`))
	req := podRequest(t, admissionv1.Create, basePod(), nil)
	res := mutationEngine(t, testNamespaces, bad, later).Mutate(ctx, req)
	if res.Rejection() != "" || len(res.Errors) != 1 || res.Errors[0].Policy != "bad" {
		t.Fatalf("rejection %q, errors %v: want bad's error only", res.Rejection(), res.Errors)
	}
	if got := applyPatch(t, req.Object.Raw, res); meta(got)["labels"].(map[string]any)["later"] != "yes" {
		t.Errorf("later was not applied: %v", meta(got)["labels"])
	}
}

// What the check does not judge is as before: a field the schema does not
// declare (the API server drops it), an object that was unfit as sent (a
// newer API server's fields: the schema cannot tell what a policy broke),
// a kind without a known schema.
func TestMutationSchemaCheckLeaves(t *testing.T) {
	t.Run("a field the schema does not declare", func(t *testing.T) {
		p := mutationPolicy("m", 0, match(), mergePatch(`{"spec":{"notAField":1}}`))
		req := podRequest(t, admissionv1.Create, basePod(), nil)
		res := mutationEngine(t, testNamespaces, p).Mutate(ctx, req)
		if len(res.Errors) != 0 || res.Patch == nil {
			t.Fatalf("errors %v, patch %v", res.Errors, res.Patch)
		}
		if err := decodeAsTheAPIServer(t, applyPatch(t, req.Object.Raw, res)); err != nil {
			t.Fatalf("the API server's decoder refuses it too: %v", err)
		}
	})
	t.Run("an object unfit as sent", func(t *testing.T) {
		sent := edit(func(p map[string]any) { spec(p)["hostname"] = int64(5) })
		fine := mutationPolicy("fine", 0, match(), mergePatch(`{"spec":{"enableServiceLinks":false}}`))
		alsoUnfit := mutationPolicy("also-unfit", 1, match(), mergePatch(`{"spec":{"subdomain":6}}`))
		res := mutationEngine(t, testNamespaces, fine, alsoUnfit).Mutate(ctx, podRequest(t, admissionv1.Create, sent, nil))
		if len(res.Errors) != 0 || len(res.Changed) != 2 {
			t.Fatalf("errors %v, changed %v: want both applied, as before", res.Errors, res.Changed)
		}
	})
	t.Run("a kind without a known schema", func(t *testing.T) {
		p := mutationPolicy("m", 0, match(withRules(resourceRule("example.com", "v1", []string{"widgets"}, anyOp))), mergePatch(`{"spec":{"size":"30"}}`))
		widget := map[string]any{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w"}, "spec": map[string]any{"size": int64(30)}}
		req := request{op: admissionv1.Create, group: "example.com", kind: "Widget", resource: "widgets", name: "w", object: obj(t, widget)}.build()
		res := mutationEngine(t, testNamespaces, p).Mutate(ctx, req)
		if len(res.Errors) != 0 || res.Patch == nil {
			t.Fatalf("errors %v, patch %v", res.Errors, res.Patch)
		}
	})
}
