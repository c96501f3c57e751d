package admission

import (
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// journal is the writes of the policies that applied, for the answer's
// patch: each member written, where it was written first, while every
// write's path is known; once one is not, the patch is computed by
// difference.
type journal struct {
	unknown bool
	order   []undoEntry
	at      map[string]int
}

// commit records a policy's writes.
func (j *journal) commit(log undoLog) {
	if j.unknown {
		return
	}
	for _, e := range log {
		if e.path == "" {
			j.unknown, j.order, j.at = true, nil, nil
			return
		}
		if _, ok := j.at[e.path]; ok || j.inCreated(e.path) {
			continue
		}
		if j.at == nil {
			j.at = map[string]int{}
		}
		j.at[e.path] = len(j.order)
		j.order = append(j.order, e)
	}
}

// inCreated reports whether path is inside a member the journal created:
// its final value, written whole, has it.
func (j *journal) inCreated(path string) bool {
	for i := strings.LastIndexByte(path, '/'); i > 0; i = strings.LastIndexByte(path, '/') {
		path = path[:i]
		if k, ok := j.at[path]; ok && !j.order[k].existed {
			return true
		}
	}
	return false
}

// patch is the JSON patch of the writes: each member set to its final
// value ("add" replaces a member that exists), containers before what
// they contain, as they were written.
func (j *journal) patch() []jsonpatch.Operation {
	out := make([]jsonpatch.Operation, 0, len(j.order))
	for _, e := range j.order {
		v, ok := e.m[e.key]
		if !ok {
			out = append(out, jsonpatch.Operation{Operation: "remove", Path: e.path})
			continue
		}
		out = append(out, jsonpatch.Operation{Operation: "add", Path: e.path, Value: v})
	}
	return out
}
