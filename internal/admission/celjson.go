package admission

import (
	"fmt"
	"io"
	"reflect"
	"strconv"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	jsoniter "github.com/json-iterator/go"
)

// celValueOfJSON is a JSON object as the CEL value celValue makes of its
// decoding (integers as int64, as the API server's unstructured decoder
// reads them), converted lazily: the object is checked whole at once, and
// each member becomes a CEL value when an expression first reads it (a
// jsonMap). A check of a label never converts the managedFields. Empty or
// null is no object (nil).
func celValueOfJSON(raw []byte) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	it := jsoniter.ConfigDefault.BorrowIterator(raw)
	defer jsoniter.ConfigDefault.ReturnIterator(it)
	switch it.WhatIsNext() {
	case jsoniter.NilValue:
		it.ReadNil()
		return nil, it.Error
	case jsoniter.ObjectValue:
	default:
		return nil, fmt.Errorf("not a JSON object")
	}
	// Skipping the members checks them (json-iterator's strict skip), so a
	// member read later converts without error.
	v := readJSONMap(it, len(raw))
	if it.Error != nil && it.Error != io.EOF {
		return nil, it.Error
	}
	return v, nil
}

// jsonCELValue reads the next JSON value, about size bytes, as a CEL
// value: objects as jsonMaps, arrays as lists of such values, the rest
// converted at once.
func jsonCELValue(it *jsoniter.Iterator, size int) ref.Val {
	switch it.WhatIsNext() {
	case jsoniter.ObjectValue:
		return readJSONMap(it, size)
	case jsoniter.ArrayValue:
		var l []ref.Val
		it.ReadArrayCB(func(it *jsoniter.Iterator) bool {
			l = append(l, jsonCELValue(it, 64))
			return true
		})
		if l == nil {
			l = []ref.Val{}
		}
		return types.NewRefValList(types.DefaultTypeAdapter, l)
	case jsoniter.StringValue:
		return types.String(it.ReadString())
	case jsoniter.NumberValue:
		n := it.ReadNumber().String()
		if i, err := strconv.ParseInt(n, 10, 64); err == nil {
			return types.Int(i)
		}
		f, err := strconv.ParseFloat(n, 64)
		if err != nil {
			it.ReportError("number", err.Error())
		}
		return types.Double(f)
	case jsoniter.BoolValue:
		return types.Bool(it.ReadBool())
	case jsoniter.NilValue:
		it.ReadNil()
		return types.NullValue
	}
	it.ReportError("value", "not a JSON value")
	return types.NullValue
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
	// raw holds the members' JSON; member i is raw[spans[i][0]:spans[i][1]].
	raw   []byte
	spans [][2]int
	vals  []ref.Val // converted members, nil until read
	// index finds a member of a large map; small ones are searched.
	index map[string]int
	whole traits.Mapper // every member converted, once needed
}

var (
	_ traits.Mapper = (*jsonMap)(nil)
	_ traits.Zeroer = (*jsonMap)(nil)
)

// jsonMapIndexed is the size from which a jsonMap indexes its keys.
const jsonMapIndexed = 8

// readJSONMap reads the next JSON object, about size bytes, keeping its
// members' JSON. A key given twice is its last value, as decoding gives.
func readJSONMap(it *jsoniter.Iterator, size int) *jsonMap {
	m := &jsonMap{raw: make([]byte, 0, size)}
	it.ReadMapCB(func(it *jsoniter.Iterator, key string) bool {
		start := len(m.raw)
		m.raw = it.SkipAndAppendBytes(m.raw)
		if i, ok := m.lookup(key); ok {
			m.spans[i] = [2]int{start, len(m.raw)}
			return true
		}
		m.keys = append(m.keys, key)
		m.spans = append(m.spans, [2]int{start, len(m.raw)})
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
	m.vals = make([]ref.Val, len(m.keys))
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
	raw := m.raw[m.spans[i][0]:m.spans[i][1]]
	it := jsoniter.ConfigDefault.BorrowIterator(raw)
	v := jsonCELValue(it, len(raw))
	if it.Error != nil && it.Error != io.EOF {
		v = types.NewErr("decoding member %q: %v", m.keys[i], it.Error)
	}
	jsoniter.ConfigDefault.ReturnIterator(it)
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
func (m *jsonMap) Value() any                  { return m.all().Value() }
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
