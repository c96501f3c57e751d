package admission

import (
	"encoding/json"
	"reflect"
	"testing"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// partialObjects are objects as the API server may send them and as it
// never would, for partialObject.
var partialObjects = []string{
	`{"kind":"ConfigMap","metadata":{"name":"a","labels":{"app":"x"},"annotations":{"n":"1"},"managedFields":[{"manager":"m"}]},"data":{"k":"v"}}`,
	`{"metadata":{"labels":{"a":"1"}},"metadata":{"annotations":{"b":"2"}}}`, // the last metadata counts
	`{"metadata":{"labels":{"a":"1"},"labels":{"c":"3"}}}`,
	`{"metadata":{"labels":null,"annotations":null}}`,
	`{"metad\u0061ta":{"l\u0061bels":{"\u0061":"\u00e9"}}}`,
	"{\"metadata\":{\"labels\":{\"bad\":\"\xff\xfe.\"}},\"spec\":{}}", // not UTF-8
	"{\"metadata\":{\"labels\":{\"\xff\":\"key\"}}}",
	`{"metadata":{"labels":{"n":1,"f":1.5,"big":12345678901234567890}}}`,
	`{"metadata":{"labels":{"a":"1","a":"2","b":"\ud800","c":"\ud83d\ude00","d":"\u00e9\n\"","e\u0301":"x"}}}`,
	`{"metadata":{"annotations":{"a":"1","b":{"nested":true}}}}`,
	`{"metadata":{"labels":{}}}`,
	`{"metadata":"not an object"}`,
	`{"metadata":null}`,
	`{"metadata":[1,2]}`,
	`{"spec":{"replicas":3}}`,
	`{}`,
	`null`,
	``,
	`[1]`,
	`"string"`,
	`{"metadata":{"labels":{"a":"1"}}`,
	`{"metadata":{"labels":{"a":1e999}}}`,
	`{"metadata":{"name":"x"},"spec":{"n":1e999}}`,
}

// TestPartialObjectIsTheDecodedMetadata: a partial object is the whole
// decoding's labels and annotations, and only them; what the whole
// decoding refuses is not decoded in part either, or its error is left to
// the whole decoding.
func TestPartialObjectIsTheDecodedMetadata(t *testing.T) {
	// Each object read checked, and, when it is valid JSON, as a review
	// decoded by the webhook is: known valid, not checked again.
	type input struct {
		raw   string
		valid bool
	}
	var inputs []input
	for _, raw := range partialObjects {
		inputs = append(inputs, input{raw, false})
		if json.Valid([]byte(raw)) {
			inputs = append(inputs, input{raw, true})
		}
	}
	for _, in := range inputs {
		raw := in.raw
		whole, err := decodeObject([]byte(raw))
		part, ok := partialObject([]byte(raw), in.valid)
		if !ok {
			if err == nil {
				t.Errorf("%s: not decoded in part, decoded whole", raw)
			}
			continue
		}
		if (part == nil) != (whole == nil && err == nil) {
			if err != nil {
				// Only the part it reads was checked: the whole decoding
				// still reports the rest.
				continue
			}
			t.Errorf("%s: in part %v, whole %v", raw, part, whole)
			continue
		}
		if part == nil {
			continue
		}
		if err != nil {
			t.Logf("%s: decoded in part, the whole decoding says %v", raw, err)
			continue
		}
		want := map[string]any{}
		if m, found := whole.Object["metadata"]; found {
			if wm, isMap := m.(map[string]any); isMap {
				pm := map[string]any{}
				for _, k := range partialMembers {
					if v, found := wm[k]; found {
						pm[k] = v
					}
				}
				want["metadata"] = pm
			} else {
				want["metadata"] = m
			}
		}
		if !reflect.DeepEqual(part.Object, want) {
			t.Errorf("%s:\nin part %#v\nwant    %#v", raw, part.Object, want)
		}
	}
}

// TestCompletedObjectKeepsWrites: labels and annotations set on an object
// decoded in part are in it when it is completed, the rest of the object
// with them, and the undo log still undoes them.
func TestCompletedObjectKeepsWrites(t *testing.T) {
	for _, raw := range []string{
		`{"kind":"ConfigMap","metadata":{"name":"a","labels":{"app":"x"},"managedFields":[{"manager":"m"}]},"data":{"k":"v"}}`,
		`{"kind":"ConfigMap","data":{"k":"v"}}`,
		`{"metadata":{"labels":null},"data":{"k":"v"}}`,
	} {
		write := func(doc map[string]any, log *undoLog) {
			t.Helper()
			if err := setMetadataStrings(doc, "labels", []keyValue{{"app", "y"}, {"stamped", "yes"}}, true, log); err != nil {
				t.Fatal(err)
			}
			if err := setMetadataStrings(doc, "annotations", []keyValue{{"seen", "1"}}, false, log); err != nil {
				t.Fatal(err)
			}
		}
		r := NewRequest(&admissionv1.AdmissionRequest{Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: []byte(raw)}}, nil)
		if err := r.decodeMetadata(); err != nil || !r.partial {
			t.Fatalf("%s: decodeMetadata: %v, partial %v", raw, err, r.partial)
		}
		var log undoLog
		write(r.object.Object, &log)
		r.objectChanged()
		if err := r.decode(); err != nil || r.partial {
			t.Fatalf("%s: decode: %v, partial %v", raw, err, r.partial)
		}
		want, _ := decodeObject([]byte(raw))
		var wantLog undoLog
		write(want.Object, &wantLog)
		if !reflect.DeepEqual(r.object.Object, want.Object) {
			t.Errorf("%s: completed\n%v\nwant\n%v", raw, r.object.Object, want.Object)
		}
		act, err := r.celInputs()
		if err != nil {
			t.Fatal(err)
		}
		if got := act.object.(ref.Val); got.Equal(celValue(want.Object)) != types.True {
			t.Errorf("%s: CEL sees %v", raw, got)
		}
		log.rollback(0)
		orig, _ := decodeObject([]byte(raw))
		if !reflect.DeepEqual(r.object.Object, orig.Object) {
			t.Errorf("%s: rolled back to\n%v\nwant\n%v", raw, r.object.Object, orig.Object)
		}
	}
}

// A policy that only sets labels, before one that patches the object and
// one whose condition reads beyond the metadata: each sees the whole
// object with what the ones before it did.
func TestMetadataOnlyThenWholeObject(t *testing.T) {
	e := mutationEngine(t, testNamespaces,
		mutationPolicy("a-label", 0, match(), setLabels(false, "stamped", "yes")),
		mutationPolicy("b-patch", 1, match(withConditions("object.metadata.labels.stamped == 'yes'")), jsonPatch(`[{"op":"add","path":"/spec/priority","value":7}]`)),
		mutationPolicy("c-reads", 2, match(withConditions("object.spec.priority == 7 && object.spec.containers.size() > 0")), setAnnotations(false, "saw", "all")),
	)
	req := podRequest(t, admissionv1.Create, basePod(), nil)
	res := e.Mutate(ctx, req)
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a-label", "b-patch", "c-reads"}; !reflect.DeepEqual(res.Changed, want) {
		t.Fatalf("Changed = %v, want %v", res.Changed, want)
	}
	got := applyPatch(t, req.Object.Raw, res)
	want := normalise(t, edit(func(p map[string]any) {
		m := meta(p)
		if m["labels"] == nil {
			m["labels"] = map[string]any{}
		}
		m["labels"].(map[string]any)["stamped"] = "yes"
		if m["annotations"] == nil {
			m["annotations"] = map[string]any{}
		}
		m["annotations"].(map[string]any)["saw"] = "all"
		spec(p)["priority"] = 7
	}))
	if !reflect.DeepEqual(normalise(t, got), want) {
		t.Errorf("patched\n%v\nwant\n%v", got, want)
	}
}

// PatchJSON writes what encoding/json writes of the operations through
// their own MarshalJSON.
func TestPatchJSONIsTheOperationsEncoding(t *testing.T) {
	res := MutateResult{Patch: []jsonpatch.Operation{
		{Operation: "add", Path: "/metadata/labels", Value: map[string]any{"b": "<&>", "a": "x\u2028"}},
		{Operation: "add", Path: "/metadata/labels/stamped", Value: "yes"},
		{Operation: "replace", Path: "/spec/replicas", Value: int64(3)},
		{Operation: "replace", Path: "/spec/f", Value: 1.5},
		{Operation: "add", Path: "/spec/zero", Value: ""},
		{Operation: "add", Path: "/spec/false", Value: false},
		{Operation: "add", Path: "/spec/null"},
		{Operation: "replace", Path: "/spec/null"},
		{Operation: "remove", Path: "/metadata/annotations/a~1b"},
		{Operation: "add", Path: "/spec/list", Value: []any{int64(1), "two", nil, map[string]any{}}},
	}}
	got, err := res.PatchJSON()
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(res.Patch)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("PatchJSON\n%s\nencoding/json\n%s", got, want)
	}
}
