package admission

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/tidwall/gjson"
)

// celValueOfJSON is a JSON object as the CEL value celValue makes of its
// decoding (integers as int64, as the API server's unstructured decoder
// reads them), converted lazily: the object is validated whole at once,
// and each member becomes a CEL value when an expression first reads it
// (a jsonMap). A check of a label never converts, nor allocates for, the
// managedFields: members are found by scanning (gjson), and each is a
// substring of one copy of the JSON. Empty or null is no object (nil).
// valid says raw is valid JSON, checked already.
func celValueOfJSON(raw []byte, valid bool) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	// Validating first makes every later read of a member well defined:
	// gjson reads valid JSON and does not check it.
	if !valid && !gjson.ValidBytes(raw) {
		return nil, fmt.Errorf("not valid JSON")
	}
	v := gjson.Parse(string(raw))
	switch {
	case v.Type == gjson.Null:
		return nil, nil
	case v.IsObject():
		return readJSONMap(v), nil
	}
	return nil, fmt.Errorf("not a JSON object")
}

// jsonCELValue is a valid JSON value as a CEL value: objects as jsonMaps,
// arrays as lists of such values, the rest converted at once.
func jsonCELValue(v gjson.Result) ref.Val {
	switch v.Type {
	case gjson.JSON:
		if v.IsObject() {
			return readJSONMap(v)
		}
		l := []ref.Val{}
		v.ForEach(func(_, e gjson.Result) bool {
			l = append(l, jsonCELValue(e))
			return true
		})
		return &nativeList{Lister: types.NewRefValList(types.DefaultTypeAdapter, l), elems: l}
	case gjson.String:
		return types.String(decodedString(v.Str))
	case gjson.Number:
		if i, err := strconv.ParseInt(v.Raw, 10, 64); err == nil {
			return types.Int(i)
		}
		f, err := strconv.ParseFloat(v.Raw, 64)
		if err != nil {
			return types.NewErr("decoding number %s: %v", v.Raw, err)
		}
		return types.Double(f)
	case gjson.True:
		return types.True
	case gjson.False:
		return types.False
	}
	return types.NullValue
}

// decodedString is s as encoding/json decodes it: each byte that is not
// part of valid UTF-8 becomes U+FFFD (gjson leaves them).
func decodedString(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

// jsonMap is a JSON object as a CEL map of strings whose members are
// converted when first read (Find), each once. What reads the whole map
// (iteration, equality, conversion to Go) sees it converted whole, a map
// made by types.NewRefValMap as celValue makes it; Find, Get, Contains
// and Size, what field selection, has() and "in" use, do not convert
// what they do not return. It is used by one goroutine, as the
// activation is.
type jsonMap struct {
	keys []string
	// raw are the members' JSON, substrings of the object's.
	raw  []string
	vals []ref.Val // converted members, nil until read
	// index finds a member of a large map; small ones are searched.
	index  map[string]int
	whole  traits.Mapper  // every member converted, once needed
	native map[string]any // Value, built once
	// room for the first members, in the map's own allocation: most
	// objects have few.
	firstKeys [jsonMapIndexed]string
	firstRaw  [jsonMapIndexed]string
	firstVals [jsonMapIndexed]ref.Val
}

var (
	_ traits.Mapper = (*jsonMap)(nil)
	_ traits.Zeroer = (*jsonMap)(nil)
)

// jsonMapIndexed is the size from which a jsonMap indexes its keys.
const jsonMapIndexed = 8

// readJSONMap is the valid JSON object v, its members kept as JSON. A key
// given twice is its last value, as decoding gives.
func readJSONMap(v gjson.Result) *jsonMap {
	m := &jsonMap{}
	m.keys, m.raw = m.firstKeys[:0], m.firstRaw[:0]
	v.ForEach(func(k, val gjson.Result) bool {
		key := decodedString(k.Str)
		if i, ok := m.lookup(key); ok {
			m.raw[i] = val.Raw
			return true
		}
		m.keys = append(m.keys, key)
		m.raw = append(m.raw, val.Raw)
		if m.index != nil {
			m.index[key] = len(m.keys) - 1
		} else if len(m.keys) == jsonMapIndexed {
			m.index = make(map[string]int, 2*jsonMapIndexed)
			for i, k := range m.keys {
				m.index[k] = i
			}
		}
		return true
	})
	if len(m.keys) <= len(m.firstVals) {
		m.vals = m.firstVals[:len(m.keys)]
	} else {
		m.vals = make([]ref.Val, len(m.keys))
	}
	return m
}

func (m *jsonMap) lookup(key string) (int, bool) {
	if m.index != nil {
		i, ok := m.index[key]
		return i, ok
	}
	for i, k := range m.keys {
		if k == key {
			return i, true
		}
	}
	return 0, false
}

// member is member i as a CEL value, converted on first use.
func (m *jsonMap) member(i int) ref.Val {
	if v := m.vals[i]; v != nil {
		return v
	}
	v := jsonCELValue(gjson.Parse(m.raw[i]))
	m.vals[i] = v
	return v
}

// all is the map converted whole.
func (m *jsonMap) all() traits.Mapper {
	if m.whole == nil {
		w := make(map[ref.Val]ref.Val, len(m.keys))
		for i, k := range m.keys {
			w[types.String(k)] = m.member(i)
		}
		m.whole = types.NewRefValMap(types.DefaultTypeAdapter, w).(traits.Mapper)
	}
	return m.whole
}

// Find implements traits.Mapper as the converted map's Find does: only
// string keys are members.
func (m *jsonMap) Find(key ref.Val) (ref.Val, bool) {
	switch k := key.(type) {
	case types.String:
		if i, ok := m.lookup(string(k)); ok {
			return m.member(i), true
		}
		return nil, false
	case *types.Err, *types.Unknown:
		return k, false
	}
	return m.all().Find(key)
}

func (m *jsonMap) Get(key ref.Val) ref.Val {
	v, found := m.Find(key)
	if !found {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

func (m *jsonMap) Contains(key ref.Val) ref.Val {
	_, found := m.Find(key)
	return types.Bool(found)
}

func (m *jsonMap) Size() ref.Val               { return types.Int(len(m.keys)) }
func (m *jsonMap) IsZeroValue() bool           { return len(m.keys) == 0 }
func (m *jsonMap) Type() ref.Type              { return types.MapType }
func (m *jsonMap) Value() any                  { return m.nativeValue() }
func (m *jsonMap) String() string              { return fmt.Sprint(m.all()) }
func (m *jsonMap) Iterator() traits.Iterator   { return m.all().Iterator() }
func (m *jsonMap) Equal(other ref.Val) ref.Val { return m.all().Equal(other) }

func (m *jsonMap) ConvertToNative(typeDesc reflect.Type) (any, error) {
	return m.all().ConvertToNative(typeDesc)
}

func (m *jsonMap) ConvertToType(typeVal ref.Type) ref.Val {
	switch typeVal {
	case types.MapType:
		return m
	case types.TypeType:
		return types.MapType
	}
	return types.NewErr("type conversion error from '%s' to '%s'", types.MapType, typeVal)
}

// nativeValue is the object decoded as the API server decodes it
// (utiljson: integers as int64, null as nil), what the Value of its map
// over an unstructured object is: built once, from its members' own
// Values, so that a native walk of a deep object (an apply
// configuration's conversion reads Value at every level) decodes each
// member once.
func (m *jsonMap) nativeValue() map[string]any {
	if m.native == nil {
		m.native = make(map[string]any, len(m.keys))
		for i, k := range m.keys {
			m.native[k] = nativeOf(m.member(i))
		}
	}
	return m.native
}

// nativeOf is a JSON value's CEL value read natively: its Value, nil for
// null (whose Value is structpb's NULL_VALUE).
func nativeOf(v ref.Val) any {
	if _, null := v.(types.Null); null {
		return nil
	}
	return v.Value()
}
