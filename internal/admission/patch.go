package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// This file applies the mutations of a MutationPolicy to an object decoded
// as unstructured JSON (map[string]any), in place: the object is decoded
// once per request and encoded once at the end, however many mutations
// apply. Every write goes through an undoLog, so a policy that fails
// halfway is rolled back and never half-applied.
//
// JSON patches (RFC 6902) are applied with rules that keep them
// idempotent, so that applying a policy set to its own output changes
// nothing:
//
//   - add sets an object member (RFC 6902: replacing one that exists); its
//     parent must exist. Appending to an array ("/-") is refused when the
//     policy is compiled, and inserting into an array at an index fails
//     when applied: applied again, either would add the element again.
//   - remove of a path that does not exist (or whose parent does not) does
//     nothing, where RFC 6902 fails: once removed, a field stays removed.
//     Removing an array element fails when applied: applied again, it
//     would remove the next one.
//   - replace sets a member or array element that must exist.
//   - test is a precondition: when it fails, that jsonPatch mutation is
//     skipped (rolled back to before its first operation) and the policy
//     goes on with its next mutation, as the API server's
//     MutatingAdmissionPolicy does. It is not an error.
//   - copy is add with a value read from "from", which must exist; copying
//     a value into itself is refused (it would grow on every application).
//   - move is refused: applied again, its source is gone. Write it as a
//     copy and a remove.
//
// add and replace may not set null: the response patch cannot carry a
// null value (gomodules.xyz/jsonpatch drops it), and remove deletes a
// field.

// undoEntry is one write: to a map member (m != nil) or a slice element.
type undoEntry struct {
	m       map[string]any
	key     string
	s       []any
	index   int
	old     any
	existed bool
}

// undoLog records writes so that they can be undone, newest first. A
// write that would not change the document is not made, so the log also
// says whether anything changed.
type undoLog []undoEntry

func (u *undoLog) set(m map[string]any, key string, v any) {
	old, existed := m[key]
	*u = append(*u, undoEntry{m: m, key: key, old: old, existed: existed})
	m[key] = v
}

func (u *undoLog) del(m map[string]any, key string) {
	old, existed := m[key]
	if !existed {
		return
	}
	*u = append(*u, undoEntry{m: m, key: key, old: old, existed: true})
	delete(m, key)
}

func (u *undoLog) setIndex(s []any, i int, v any) {
	*u = append(*u, undoEntry{s: s, index: i, old: s[i]})
	s[i] = v
}

// rollback undoes every write after mark.
func (u *undoLog) rollback(mark int) {
	log := *u
	for i := len(log) - 1; i >= mark; i-- {
		e := &log[i]
		switch {
		case e.m == nil:
			e.s[e.index] = e.old
		case e.existed:
			e.m[e.key] = e.old
		default:
			delete(e.m, e.key)
		}
		log[i] = undoEntry{}
	}
	*u = log[:mark]
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

// arrayIndex parses a reference token into an index of an array of n
// elements.
func arrayIndex(tok string, n int) (int, bool) {
	if tok == "" || len(tok) > 1 && tok[0] == '0' {
		return 0, false
	}
	i, err := strconv.Atoi(tok)
	if err != nil || i < 0 || i >= n {
		return 0, false
	}
	return i, true
}

// lookup returns the value at p.
func lookup(doc any, p pointer) (any, bool) {
	v := doc
	for _, tok := range p {
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[tok]; !ok {
				return nil, false
			}
		case []any:
			i, ok := arrayIndex(tok, len(c))
			if !ok {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// opKind is a JSON patch operation.
type opKind uint8

const (
	opAdd opKind = iota
	opRemove
	opReplace
	opTest
	opCopy
)

// patchOp is one compiled JSON patch operation.
type patchOp struct {
	kind  opKind
	path  pointer
	from  pointer // copy
	value any     // add, replace, test: decoded JSON, never written into a document (copied)
	text  string  // "add /spec/x", for errors
}

// errTestFailed is how a failed test skips a jsonPatch mutation.
var errTestFailed = errors.New("test failed")

// rawOp is a JSON patch operation as written. Members are matched
// exactly (encoding/json would match "OP" as "op"); others are ignored, as
// RFC 6902 says.
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

// compileJSONPatch parses an RFC 6902 patch and checks that it can be
// applied idempotently. It returns every problem, each prefixed with the
// operation's index.
func compileJSONPatch(s string) ([]patchOp, []string) {
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
	var (
		ops  []patchOp
		errs []string
	)
	for i, b := range raw {
		var r rawOp
		if err := json.Unmarshal(b, &r); err != nil {
			errs = append(errs, fmt.Sprintf("operation %d: not an operation object: %v", i, err))
			continue
		}
		op, msg := compileOp(&r)
		if msg != "" {
			errs = append(errs, fmt.Sprintf("operation %d: %s", i, msg))
			continue
		}
		ops = append(ops, op)
	}
	return ops, errs
}

func compileOp(r *rawOp) (patchOp, string) {
	if r.Op == nil {
		return patchOp{}, `"op" is required`
	}
	var op patchOp
	switch *r.Op {
	case "add":
		op.kind = opAdd
	case "remove":
		op.kind = opRemove
	case "replace":
		op.kind = opReplace
	case "test":
		op.kind = opTest
	case "copy":
		op.kind = opCopy
	case "move":
		return op, `"move" is not idempotent: applied again, its source is gone; write it as a copy and a remove`
	default:
		return op, fmt.Sprintf(`unknown op %q: add, remove, replace, test or copy`, *r.Op)
	}
	if r.Path == nil {
		return op, `"path" is required`
	}
	var err error
	if op.path, err = parsePointer(*r.Path); err != nil {
		return op, fmt.Sprintf("path %q: %v", *r.Path, err)
	}
	op.text = *r.Op + " " + *r.Path
	if len(op.path) == 0 && op.kind != opTest {
		return op, fmt.Sprintf(`%s of the whole object ("") is not allowed: name a field under it`, *r.Op)
	}
	for i, tok := range op.path {
		if tok != "-" {
			continue
		}
		switch {
		case i == len(op.path)-1 && (op.kind == opAdd || op.kind == opCopy):
			return op, fmt.Sprintf(`path %q appends to an array: applying the policy again would append again, so the mutation would not be idempotent (set the whole array with mergePatch, or an element with replace)`, *r.Path)
		default:
			return op, fmt.Sprintf(`path %q: "-" names the element after the last one, which does not exist`, *r.Path)
		}
	}

	switch op.kind {
	case opAdd, opReplace, opTest:
		if r.Value == nil {
			return op, fmt.Sprintf(`%q needs a "value"`, *r.Op)
		}
		if err := utiljson.Unmarshal(r.Value, &op.value); err != nil {
			return op, fmt.Sprintf("value: %v", err)
		}
		if op.value == nil && op.kind != opTest {
			return op, fmt.Sprintf(`%q of null is not allowed: use "remove" to delete a field`, *r.Op)
		}
	case opCopy:
		if r.From == nil {
			return op, `"copy" needs a "from"`
		}
		if op.from, err = parsePointer(*r.From); err != nil {
			return op, fmt.Sprintf("from %q: %v", *r.From, err)
		}
		if len(op.path) < len(op.from) && pointerHasPrefix(op.from, op.path) {
			return op, fmt.Sprintf(`copy from %q into %q copies a value over one that holds it: each application would strip one more level`, *r.From, *r.Path)
		}
		if len(op.from) <= len(op.path) && pointerHasPrefix(op.path, op.from) {
			return op, fmt.Sprintf(`copy from %q into %q copies a value into itself: it would grow on every application`, *r.From, *r.Path)
		}
		op.text += " from " + *r.From
	}
	return op, ""
}

func pointerHasPrefix(p, prefix pointer) bool {
	if len(prefix) > len(p) {
		return false
	}
	for i := range prefix {
		if p[i] != prefix[i] {
			return false
		}
	}
	return true
}

// applyJSONPatch applies ops to doc. When a test fails it rolls back what
// the patch did and returns errTestFailed.
func applyJSONPatch(doc map[string]any, ops []patchOp, log *undoLog) error {
	mark := len(*log)
	for i := range ops {
		op := &ops[i]
		var err error
		switch op.kind {
		case opAdd:
			err = addValue(doc, op.path, op.value, log)
		case opRemove:
			err = removeValue(doc, op.path, log)
		case opReplace:
			err = replaceValue(doc, op.path, op.value, log)
		case opTest:
			if v, ok := lookup(doc, op.path); !ok || !jsonEqual(v, op.value) {
				log.rollback(mark)
				return errTestFailed
			}
		case opCopy:
			v, ok := lookup(doc, op.from)
			if !ok {
				err = fmt.Errorf("%q does not exist", pointerString(op.from))
				break
			}
			err = addValue(doc, op.path, v, log)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", op.text, err)
		}
	}
	return nil
}

// addValue sets the member at p to a copy of v. The parent must exist.
func addValue(doc map[string]any, p pointer, v any, log *undoLog) error {
	parent, ok := lookup(doc, p[:len(p)-1])
	if !ok {
		return fmt.Errorf("its parent %q does not exist", pointerString(p[:len(p)-1]))
	}
	last := p[len(p)-1]
	switch c := parent.(type) {
	case map[string]any:
		if old, ok := c[last]; ok && jsonEqual(old, v) {
			return nil
		}
		log.set(c, last, runtime.DeepCopyJSONValue(v))
		return nil
	case []any:
		return errors.New("add inserts into an array: applying the policy again would insert again, so it cannot be idempotent (use replace to set an element, or mergePatch to set the whole array)")
	default:
		return fmt.Errorf("its parent %q is not an object", pointerString(p[:len(p)-1]))
	}
}

// removeValue deletes the member at p, if there is one.
func removeValue(doc map[string]any, p pointer, log *undoLog) error {
	parent, ok := lookup(doc, p[:len(p)-1])
	if !ok {
		return nil
	}
	switch c := parent.(type) {
	case map[string]any:
		log.del(c, p[len(p)-1])
	case []any:
		if _, ok := arrayIndex(p[len(p)-1], len(c)); ok {
			return errors.New("remove of an array element is not idempotent: applied again, it would remove the next one (use mergePatch to set the whole array)")
		}
	}
	return nil
}

// replaceValue sets the existing member or element at p to a copy of v.
func replaceValue(doc map[string]any, p pointer, v any, log *undoLog) error {
	parent, ok := lookup(doc, p[:len(p)-1])
	if ok {
		last := p[len(p)-1]
		switch c := parent.(type) {
		case map[string]any:
			if old, ok := c[last]; ok {
				if !jsonEqual(old, v) {
					log.set(c, last, runtime.DeepCopyJSONValue(v))
				}
				return nil
			}
		case []any:
			if i, ok := arrayIndex(last, len(c)); ok {
				if !jsonEqual(c[i], v) {
					log.setIndex(c, i, runtime.DeepCopyJSONValue(v))
				}
				return nil
			}
		}
	}
	return errors.New("there is nothing to replace: the path does not exist")
}

// pointerString encodes p back into a JSON pointer.
func pointerString(p pointer) string {
	var b strings.Builder
	for _, tok := range p {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1"))
	}
	return b.String()
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
		log.set(doc, "metadata", meta)
	}
	m, ok := meta[member].(map[string]any)
	if !ok {
		if meta[member] != nil {
			return fmt.Errorf("metadata.%s is not an object", member)
		}
		m = make(map[string]any, len(entries))
		log.set(meta, member, m)
	}
	for _, kv := range entries {
		old, exists := m[kv.key]
		if exists && (!overwrite || old == any(kv.value)) {
			continue
		}
		log.set(m, kv.key, kv.value)
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
