package v1alpha1

import (
	"encoding/json"
	"testing"
)

// Each form a jsonPatch may be written in decodes, and what is neither
// decodes too, kept whole, so that one bad policy never breaks the
// decoding of the others.
func TestJSONPatchForms(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want JSONPatch
		out  string
	}{
		{`"[{\"op\":\"remove\",\"path\":\"/a\"}]"`, JSONPatch{Patch: `[{"op":"remove","path":"/a"}]`}, `"[{\"op\":\"remove\",\"path\":\"/a\"}]"`},
		{`[ {"op": "remove", "path": "/a"} ]`, JSONPatch{Patch: `[{"op":"remove","path":"/a"}]`}, `"[{\"op\":\"remove\",\"path\":\"/a\"}]"`},
		{`{"expression": "[]"}`, JSONPatch{Expression: "[]"}, `{"expression":"[]"}`},
		{`{"expression": "[]", "other": 1}`, JSONPatch{Invalid: `{"expression": "[]", "other": 1}`}, `{"expression":"[]","other":1}`},
		{`{}`, JSONPatch{Invalid: `{}`}, `{}`},
		{`7`, JSONPatch{Invalid: `7`}, `7`},
		{`null`, JSONPatch{Invalid: `null`}, `null`},
	} {
		var m struct {
			P *JSONPatch `json:"p"`
		}
		if err := json.Unmarshal([]byte(`{"p":`+tt.in+`}`), &m); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if tt.in == "null" {
			// A null member is no jsonPatch at all.
			if m.P != nil {
				t.Errorf("null: %+v", *m.P)
			}
			continue
		}
		if m.P == nil || *m.P != tt.want {
			t.Errorf("%s: decoded %+v, want %+v", tt.in, m.P, tt.want)
			continue
		}
		b, err := json.Marshal(m.P)
		if err != nil || string(b) != tt.out {
			t.Errorf("%s: encoded %s, %v, want %s", tt.in, b, err, tt.out)
		}
	}
}
