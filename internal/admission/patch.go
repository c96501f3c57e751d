package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// This file applies the mutations of a MutationPolicy to an object decoded
// as unstructured JSON (map[string]any), in place: the object is decoded
// once per request and encoded once at the end, however many mutations
// apply. Every write goes through an undoLog, so a policy that fails
// halfway is rolled back and never half-applied.
//
// JSON patches are RFC 6902, applied by evanphx/json-patch as the API
// server applies a MutatingAdmissionPolicy's jsonPatch (the same module,
// gopkg.in/evanphx/json-patch.v4, with its default options), so a static
// patch and a CEL one do the same as the built-in: remove and test of a
// path that does not exist fail, "/-" appends, move moves; replace of a
// missing object member sets it, as that library does. As in a
// MutatingAdmissionPolicy, a failing test leaves the object as it was and
// is not an error. A patch is applied to the whole object and the result
// replaces it (replaceDoc), through the undo log.
//
// A MutationPolicy may be applied again to its own result (the API
// server reinvokes the webhook after a later change, and Mutate applies
// the policies before a change again): write a patch so that it is
// idempotent, as a MutatingAdmissionPolicy must be, guarding an append or
// a remove with a test operation or a match condition.
//
// add and replace may not set null: the response patch cannot carry a
// null value (gomodules.xyz/jsonpatch drops it), and remove deletes a
// field.

// undoEntry is one write to a map member. Writes replace members, whole
// patched results included (replaceDoc), so none is to a slice element.
type undoEntry struct {
	m       map[string]any
	key     string
	old     any
	existed bool
	// path is the JSON pointer of the member written, when the writer
	// knows it (labels, annotations): the answer's patch is then written
	// from the writes, not by difference.
	path string
	// nv is the value written; removed says the member was deleted. With
	// them the write can be made again (redo).
	nv      any
	removed bool
}

// undoLog records writes so that they can be undone, newest first. A
// write that would not change the document is not made, so the log also
// says whether anything changed.
type undoLog []undoEntry

func (u *undoLog) set(m map[string]any, key string, v any) {
	old, existed := m[key]
	*u = append(*u, undoEntry{m: m, key: key, old: old, existed: existed, nv: v})
	m[key] = v
}

// setAt is set of the member at path.
func (u *undoLog) setAt(path string, m map[string]any, key string, v any) {
	u.set(m, key, v)
	(*u)[len(*u)-1].path = path
}

func (u *undoLog) del(m map[string]any, key string) {
	old, existed := m[key]
	if !existed {
		return
	}
	*u = append(*u, undoEntry{m: m, key: key, old: old, existed: true, removed: true})
	delete(m, key)
}

// rollback undoes every write after mark and forgets them.
func (u *undoLog) rollback(mark int) {
	log := *u
	log[mark:].undo()
	clear(log[mark:])
	*u = log[:mark]
}

// undo undoes the writes, newest first, and keeps them, so that redo can
// make them again.
func (u undoLog) undo() {
	for i := len(u) - 1; i >= 0; i-- {
		e := &u[i]
		switch {
		case e.existed:
			e.m[e.key] = e.old
		default:
			delete(e.m, e.key)
		}
	}
}

// redo makes the writes again, oldest first, after undo.
func (u undoLog) redo() {
	for i := range u {
		e := &u[i]
		switch {
		case e.removed:
			delete(e.m, e.key)
		default:
			e.m[e.key] = e.nv
		}
	}
}

// pointer is a decoded RFC 6901 JSON pointer: its reference tokens. The
// empty pointer is the whole document.
type pointer []string

// parsePointer decodes a JSON pointer.
func parsePointer(s string) (pointer, error) {
	if s == "" {
		return pointer{}, nil
	}
	if s[0] != '/' {
		return nil, errors.New(`a JSON pointer starts with "/"`)
	}
	tokens := strings.Split(s[1:], "/")
	for i, t := range tokens {
		if !strings.Contains(t, "~") {
			continue
		}
		for j := 0; j < len(t); j++ {
			if t[j] == '~' && (j+1 == len(t) || (t[j+1] != '0' && t[j+1] != '1')) {
				return nil, errors.New(`"~" is an escape: "~0" for "~" and "~1" for "/"`)
			}
		}
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return tokens, nil
}

// compileJSONPatch parses a static RFC 6902 patch as evanphx/json-patch
// will apply it, and checks each operation as RFC 6902 defines it, so
// that what cannot apply to any object is refused when the policy is
// written. It returns every problem, each prefixed with the operation's
// index.
func compileJSONPatch(s string) (jsonpatch.Patch, []string) {
	var raw []json.RawMessage
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&raw); err != nil {
		return nil, []string{"not a JSON patch (a JSON array of operations): " + err.Error()}
	}
	if dec.More() {
		return nil, []string{"not a JSON patch: text after the array"}
	}
	if len(raw) == 0 {
		return nil, []string{"a JSON patch has at least one operation"}
	}
	var errs []string
	for i, b := range raw {
		var r rawOp
		if err := json.Unmarshal(b, &r); err != nil {
			errs = append(errs, fmt.Sprintf("operation %d: not an operation object: %v", i, err))
			continue
		}
		if msg := checkOp(&r); msg != "" {
			errs = append(errs, fmt.Sprintf("operation %d: %s", i, msg))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	patch, err := jsonpatch.DecodePatch([]byte(s))
	if err != nil {
		return nil, []string{"not a JSON patch: " + err.Error()}
	}
	return patch, nil
}

// rawOp is a JSON patch operation as written. Members are matched
// exactly (encoding/json would match "OP" as "op"), as evanphx/json-patch
// matches them; others are ignored, as RFC 6902 says.
type rawOp struct {
	Op, Path, From *string
	Value          json.RawMessage // nil when absent, "null" when null
}

func (r *rawOp) UnmarshalJSON(b []byte) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return err
	}
	for name, dst := range map[string]**string{"op": &r.Op, "path": &r.Path, "from": &r.From} {
		raw, ok := members[name]
		if !ok {
			continue
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%q is not a string", name)
		}
		*dst = &v
	}
	r.Value = members["value"]
	return nil
}

// checkOp checks one operation's members as RFC 6902 defines them.
func checkOp(r *rawOp) string {
	if r.Op == nil {
		return `"op" is required`
	}
	kind := *r.Op
	switch kind {
	case "add", "remove", "replace", "move", "copy", "test":
	default:
		return fmt.Sprintf(`unknown op %q: add, remove, replace, move, copy or test`, kind)
	}
	if r.Path == nil {
		return `"path" is required`
	}
	if _, err := parsePointer(*r.Path); err != nil {
		return fmt.Sprintf("path %q: %v", *r.Path, err)
	}
	if *r.Path == "" && kind != "test" {
		return fmt.Sprintf(`%s of the whole object ("") is not allowed: name a field under it`, kind)
	}
	switch kind {
	case "add", "replace", "test":
		if r.Value == nil {
			return fmt.Sprintf(`%q needs a "value"`, kind)
		}
		var v any
		if err := utiljson.Unmarshal(r.Value, &v); err != nil {
			return fmt.Sprintf("value: %v", err)
		}
		if v == nil && kind != "test" {
			return fmt.Sprintf(`%q of null is not allowed: use "remove" to delete a field`, kind)
		}
	case "move", "copy":
		if r.From == nil {
			return fmt.Sprintf(`%q needs a "from"`, kind)
		}
		if _, err := parsePointer(*r.From); err != nil {
			return fmt.Sprintf("from %q: %v", *r.From, err)
		}
	}
	return ""
}

// applyJSONPatch applies patch to doc as RFC 6902 says, replacing doc's
// content with the result; a failing test leaves doc as it was.
func applyJSONPatch(doc map[string]any, patch jsonpatch.Patch, log *undoLog) error {
	in, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encoding the object: %w", err)
	}
	out, err := patch.Apply(in)
	if errors.Is(err, jsonpatch.ErrTestFailed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("JSON patch: %w", err)
	}
	patched, err := decodeObject(out)
	if err != nil || patched == nil {
		return fmt.Errorf("the patched object is not a JSON object: %v", err)
	}
	replaceDoc(doc, patched.Object, log)
	return nil
}

// replaceDoc makes doc's members next's, through the log, writing only
// the members that differ. next must share nothing with doc or the log's
// values: it is written into doc as it is.
func replaceDoc(doc, next map[string]any, log *undoLog) {
	for k := range doc {
		if _, ok := next[k]; !ok {
			log.del(doc, k)
		}
	}
	for k, v := range next {
		if old, ok := doc[k]; !ok || !jsonEqual(old, v) {
			log.set(doc, k, v)
		}
	}
}

// copyJSON deep-copies decoded JSON (maps and slices; other values are
// immutable), so that a result shares nothing with its source.
func copyJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = copyJSON(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = copyJSON(e)
		}
		return l
	default:
		return v
	}
}

// compileMergePatch decodes an RFC 7386 merge patch, which must be a JSON
// object: anything else would replace the whole object.
func compileMergePatch(raw []byte) (map[string]any, string) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, "a merge patch is a JSON object"
	}
	var v any
	if err := utiljson.Unmarshal(raw, &v); err != nil {
		return nil, "not JSON: " + err.Error()
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Sprintf("a merge patch is a JSON object, not %s: anything else would replace the whole object", jsonKind(v))
	}
	if len(m) == 0 {
		return nil, "an empty merge patch changes nothing"
	}
	return m, ""
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}

// applyMergePatch merges patch into dst as RFC 7386 says: null deletes a
// member, an object merges into the member (replacing it with an object
// if it is none), anything else replaces it.
func applyMergePatch(dst, patch map[string]any, log *undoLog) {
	for k, pv := range patch {
		if pv == nil {
			log.del(dst, k)
			continue
		}
		if pm, ok := pv.(map[string]any); ok {
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = make(map[string]any, len(pm))
				log.set(dst, k, dm)
			}
			applyMergePatch(dm, pm, log)
			continue
		}
		if old, ok := dst[k]; !ok || !jsonEqual(old, pv) {
			log.set(dst, k, runtime.DeepCopyJSONValue(pv))
		}
	}
}

// setMetadataStrings sets entries of metadata.labels or
// metadata.annotations (member), creating the maps if needed. Without
// overwrite an existing key keeps its value.
func setMetadataStrings(doc map[string]any, member string, entries []keyValue, overwrite bool, log *undoLog) error {
	meta, ok := doc["metadata"].(map[string]any)
	if !ok {
		if doc["metadata"] != nil {
			return errors.New("metadata is not an object")
		}
		meta = map[string]any{}
		log.setAt("/metadata", doc, "metadata", meta)
	}
	m, ok := meta[member].(map[string]any)
	if !ok {
		if meta[member] != nil {
			return fmt.Errorf("metadata.%s is not an object", member)
		}
		m = make(map[string]any, len(entries))
		log.setAt("/metadata/"+member, meta, member, m)
	}
	for _, kv := range entries {
		old, exists := m[kv.key]
		if exists && (!overwrite || old == any(kv.value)) {
			continue
		}
		log.setAt("/metadata/"+member+"/"+jsonPointerEscape(kv.key), m, kv.key, kv.value)
	}
	return nil
}

// keyValue is one label or annotation.
type keyValue struct {
	key, value string
}

// jsonEqual compares decoded JSON values, numbers by value (an integer
// decodes as int64, a fraction as float64).
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case int64:
		switch y := b.(type) {
		case int64:
			return x == y
		case float64:
			return float64(x) == y
		}
		return false
	case float64:
		switch y := b.(type) {
		case float64:
			return x == y
		case int64:
			return x == float64(y)
		}
		return false
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !jsonEqual(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
