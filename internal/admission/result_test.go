package admission

import (
	"encoding/json"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// PatchJSON writes the bytes encoding/json writes for the same
// operations, for values as the engine's objects hold them (the API
// server's decoding of any JSON: maps, lists, strings, int64 and float64
// numbers, booleans, null) and for any path and string.
func FuzzPatchJSONIsEncodingJSONs(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"labels":{"app":"web","<b>":"\u2028&"}},"spec":{"replicas":3,"ratio":0.5,"big":9223372036854775807,"huge":1e300,"tiny":1e-7,"neg":-0,"list":[1,"two",null,true,{"x":[]}]}}`,
		`"a\ufffd\u0000"`, `12345678901234567890`, `[]`, `{}`, `null`, "{\"k\xff\":\"v\xfe\"}", `1.0`, `-1.5e-10`, `100000000000000000000000`,
	} {
		f.Add([]byte(s), "/metadata/labels/a~1b")
	}
	f.Fuzz(func(t *testing.T, raw []byte, path string) {
		var v any
		if utiljson.Unmarshal(raw, &v) != nil {
			v = string(raw)
		}
		ops := []jsonpatch.Operation{
			{Operation: "add", Path: path, Value: v},
			{Operation: "replace", Path: path},
			{Operation: "remove", Path: path},
			{Operation: "add", Path: "/s", Value: string(raw)},
		}
		if m, ok := v.(map[string]any); ok {
			for k, mv := range m {
				ops = append(ops, jsonpatch.Operation{Operation: "add", Path: "/" + k, Value: mv})
			}
		}
		r := MutateResult{Patch: ops}
		got, err := r.PatchJSON()
		// As PatchJSON encoded them with encoding/json.
		ref := make([]patchOperation, len(ops))
		for i, op := range ops {
			ref[i] = patchOperation{Operation: op.Operation, Path: op.Path, Value: op.Value}
			if op.Value == nil && op.Operation != "remove" {
				ref[i].Value = jsonNull
			}
		}
		want, werr := json.Marshal(ref)
		if (err == nil) != (werr == nil) || string(got) != string(want) {
			t.Fatalf("%q at %q:\nPatchJSON     %s (%v)\nencoding/json %s (%v)", raw, path, got, err, want, werr)
		}
	})
}
