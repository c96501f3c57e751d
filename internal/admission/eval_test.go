package admission

import (
	"reflect"
	"testing"

	"github.com/google/cel-go/cel"
	celtypes "github.com/google/cel-go/common/types"
	celref "github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"
)

// TestEvaluateAsTheAPIServer evaluates expressions both ways, ours (one
// activation per request, objects converted once) and the API server's
// (plugincel's ConditionEvaluator.ForInput over LazyObjects of the
// unstructured objects), and checks that the results, the errors and the
// cost are the same.
func TestEvaluateAsTheAPIServer(t *testing.T) {
	newer := benchPod()
	meta(newer)["annotations"] = map[string]any{"ratio": 0.5, "count": 3, "nothing": nil}
	spec(newer)["priority"] = 10
	spec(newer)["weights"] = []any{1, 2.5, "x", nil, true, map[string]any{"a": []any{}}}
	old := podObject("web-0", map[string]string{"app": "web"}, "app")
	rq := request{op: admissionv1.Update, kind: "Pod", resource: "pods", namespace: "caribou", name: "web-0",
		object: obj(t, newer), oldObject: obj(t, old), options: []byte(`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1"}`),
		username: "bob", groups: []string{"dev"}}
	req := rq.build()

	exprs := []string{
		noPrivileged,
		"object.spec.containers.all(c, c.image.startsWith('registry.example/'))",
		"object.spec.containers.map(c, c.name)",
		"object.spec.containers.filter(c, has(c.resources)).size()",
		"object.spec.containers.exists_one(c, c.name == 'app')",
		"object.spec.containers[0]",
		"object.spec.containers[0].resources.limits",
		"object.spec.containers[0].resources.limits == {'cpu': '500m', 'memory': '256Mi'}",
		"object.spec.containers == oldObject.spec.containers",
		"object.metadata.labels",
		"object.metadata.labels.app",
		"'app' in object.metadata.labels",
		"object.metadata.labels.missing",
		"has(object.metadata.labels.missing)",
		"object.metadata.annotations.ratio * 2.0",
		"object.metadata.annotations.count + 1",
		"object.metadata.annotations.nothing == null",
		"object.spec.priority > 5",
		"object.spec.priority == 10.0",
		"object.spec.weights",
		"object.spec.weights[1] + 0.5",
		"object.spec.weights.size()",
		"type(object.spec.weights[0]) == int",
		"object.spec.weights[5].a.size() == 0",
		"optional.ofNonZeroValue(object.spec.weights[5].a).hasValue()",
		"optional.ofNonZeroValue(object.spec.weights[5]).hasValue()",
		"optional.ofNonZeroValue(object.spec.weights).hasValue()",
		"object.spec.weights[9]",
		"object.spec.containers.all(c, c.nothing == 1)",
		"object.metadata.name + '/' + oldObject.metadata.name",
		"object.spec.containers.map(c, c.name).join(',')",
		"object.spec.containers.sortBy(c, c.name).map(c, c.name)",
		"quantity(object.spec.containers[0].resources.limits.memory).asInteger()",
		"oldObject.spec.containers.size() < object.spec.containers.size()",
		"request.operation + ' ' + request.userInfo.username",
		"request.options.kind",
		"request.dryRun",
		"namespaceObject.metadata.labels",
		"namespaceObject.metadata.name",
		"object",
		"oldObject.metadata",
	}
	c := testCompiler()
	var compiled []plugincel.CompilationResult
	var tracked, fast []*program
	for _, e := range exprs {
		res := c.compiler.CompileCELExpression(&expression{text: e, returns: []*cel.Type{cel.AnyType}}, celVariables, environment.StoredExpressions)
		if res.Error != nil {
			t.Fatalf("%s: %v", e, res.Error)
		}
		compiled = append(compiled, res)
		// The API server's compilation result, as is.
		tracked = append(tracked, &program{CompilationResult: res})
		p, ferr := c.compile(nil, e, cel.AnyType, environment.StoredExpressions)
		if ferr != nil {
			t.Fatalf("%s: %v", e, ferr)
		}
		fast = append(fast, p)
	}

	// The API server's.
	objU, oldU := &unstructured.Unstructured{}, &unstructured.Unstructured{}
	if err := objU.UnmarshalJSON(req.Object.Raw); err != nil {
		t.Fatal(err)
	}
	if err := oldU.UnmarshalJSON(req.OldObject.Raw); err != nil {
		t.Fatal(err)
	}
	attrs := admission.NewAttributesRecord(objU, oldU, schema.GroupVersionKind(req.Kind), req.Namespace, req.Name,
		schema.GroupVersionResource(req.Resource), req.SubResource, admission.Operation(req.Operation),
		&runtime.Unknown{Raw: req.Options.Raw, ContentType: runtime.ContentTypeJSON}, false,
		&user.DefaultInfo{Name: "bob", Groups: []string{"dev"}})
	va := &admission.VersionedAttributes{Attributes: attrs, VersionedKind: schema.GroupVersionKind(req.Kind)}
	va.VersionedObject.Set(objU)
	va.VersionedOldObject.Set(oldU)
	want, remaining, err := plugincel.NewCondition(compiled).ForInput(ctx, va,
		plugincel.CreateAdmissionRequest(attrs, req.Resource, req.Kind), plugincel.OptionalVariableBindings{},
		plugincel.CreateNamespaceObject(testNamespaces["caribou"]), RequestCostBudget)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("tracked", func(t *testing.T) {
		r := NewRequest(req, testNamespaces)
		got, err := r.evaluate(ctx, tracked, nil)
		if err != nil {
			t.Fatal(err)
		}
		sameResults(t, exprs, got, want)
		if r.RemainingBudget() != remaining {
			t.Errorf("remaining budget %d, the API server's %d", r.RemainingBudget(), remaining)
		}
	})

	t.Run("compiled by the Compiler", func(t *testing.T) {
		r := NewRequest(req, testNamespaces)
		got, err := r.evaluate(ctx, fast, nil)
		if err != nil {
			t.Fatal(err)
		}
		sameResults(t, exprs, got, want)
		if r.RemainingBudget() != remaining {
			t.Errorf("remaining budget %d, the API server's %d", r.RemainingBudget(), remaining)
		}
	})
}

// sameResults compares evaluation results with the API server's.
func sameResults(t *testing.T, exprs []string, got, want []plugincel.EvaluationResult) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d results, the API server's %d", len(got), len(want))
	}
	for i, e := range exprs {
		g, w := got[i], want[i]
		switch {
		case (g.Error == nil) != (w.Error == nil):
			t.Errorf("%s: error %v, the API server's %v", e, g.Error, w.Error)
		case g.Error != nil && g.Error.Error() != w.Error.Error():
			t.Errorf("%s: error %q, the API server's %q", e, g.Error, w.Error)
		case g.Error == nil && (g.EvalResult.Type() != w.EvalResult.Type() || g.EvalResult.Equal(w.EvalResult) != celtypes.True):
			t.Errorf("%s = %v (%v), the API server's %v (%v)", e, g.EvalResult, g.EvalResult.Type(), w.EvalResult, w.EvalResult.Type())
		}
	}
}

// The CEL values made straight from JSON are those of its decoding, as
// the API server's unstructured decoder reads it.
func TestCELValueOfJSONIsTheDecodedValue(t *testing.T) {
	for _, raw := range []string{
		`{}`,
		`{"a":1,"b":-2,"c":1.5,"d":1e3,"e":9223372036854775807,"f":92233720368547758070,"g":"x\u00e9\n\"","h":true,"i":false,"j":null}`,
		`{"list":[],"nested":[{"x":[1,"two",3.0,null,{"y":{}}]}],"dup":1,"dup":2}`,
		`{"k0":0,"k1":{"a":1},"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k1":{"b":[2]},"k9":9,"k0":"last"}`,
		`{"metadata":{"name":"p","labels":{"app":"web"}},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":80}]}]}}`,
		// Escaped keys, a lone surrogate and bytes that are not UTF-8, as
		// encoding/json decodes them (U+FFFD).
		"{\"k\\u00e9y\":\"v\",\"s\":\"\\ud800x\",\"b\":\"\xff\xfeok\",\"\xffk\":1,\"esc\\\"\":{\"\\/\":[\"\\t\"]}}",
		` { "spaced" : [ 1 , { "a" : null } ] , "e" : -0.5e-3 } `,
	} {
		got, err := celValueOfJSON([]byte(raw), false)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		// Known valid (a review the webhook decoded): the same value.
		if known, err := celValueOfJSON([]byte(raw), true); err != nil || known.(celref.Val).Equal(got.(celref.Val)) != celtypes.True {
			t.Errorf("%s, known valid: %v, %v; checked: %v", raw, known, err, got)
		}
		u, err := decodeObject([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		want := objectValue(u).(celref.Val)
		lazy := got.(celref.Val)
		if eq := want.Equal(lazy); eq != celtypes.True {
			t.Errorf("%s:\n got %v\nwant %v", raw, got, want)
		}
		// Member by member, before anything converts the map whole.
		again, _ := celValueOfJSON([]byte(raw), true)
		m := again.(traits.Mapper)
		wm := want.(traits.Mapper)
		if m.Size() != wm.Size() {
			t.Errorf("%s: size %v, want %v", raw, m.Size(), wm.Size())
		}
		for it := wm.Iterator(); it.HasNext() == celtypes.True; {
			k := it.Next()
			w, _ := wm.Find(k)
			g, found := m.Find(k)
			if !found || g.Equal(w) != celtypes.True || m.Contains(k) != celtypes.True {
				t.Errorf("%s: member %v = %v (found %v), want %v", raw, k, g, found, w)
			}
		}
		if _, found := m.Find(celtypes.String("absent")); found {
			t.Errorf("%s: found a member that is not there", raw)
		}
		if eq := lazy.Equal(want); eq != celtypes.True {
			t.Errorf("%s: lazy.Equal(decoded) = %v", raw, eq)
		}
		// Read natively, both are the decoded JSON, as the API server's
		// values over the unstructured object are; the members too.
		if !reflect.DeepEqual(lazy.Value(), u.Object) || !reflect.DeepEqual(want.Value(), u.Object) {
			t.Errorf("%s: Value %#v and %#v, want %#v", raw, lazy.Value(), want.Value(), u.Object)
		}
		for it := wm.Iterator(); it.HasNext() == celtypes.True; {
			k := it.Next()
			g, _ := m.Find(k)
			if w := u.Object[string(k.(celtypes.String))]; !reflect.DeepEqual(g.Value(), w) && w != nil {
				t.Errorf("%s: member %v Value %#v, want %#v", raw, k, g.Value(), w)
			}
		}
	}
	for _, raw := range []string{`[1]`, `"x"`, `{"a":}`, `{"a":1`, `{"a":1}x`, `{"a":"\x01"}`, `{'a':1}`, `{"a":01}`} {
		if _, err := celValueOfJSON([]byte(raw), false); err == nil {
			t.Errorf("%s: no error", raw)
		}
	}
	if v, err := celValueOfJSON([]byte(`null`), true); v != nil || err != nil {
		t.Errorf("null: %v %v", v, err)
	}
}

// Read natively, a value built from the JSON is decoded once, each member
// shared with its parent's decoding: the API server's conversion of an
// apply configuration reads Value at every level of what it copies, and a
// deep object must not be decoded again at each.
func TestJSONValueDecodedOnce(t *testing.T) {
	v, err := celValueOfJSON([]byte(`{"a":{"b":[{"c":1},{"d":null}]},"e":[]}`), false)
	if err != nil {
		t.Fatal(err)
	}
	m := v.(traits.Mapper)
	whole := m.Value().(map[string]any)
	if again := m.Value().(map[string]any); reflect.ValueOf(again).Pointer() != reflect.ValueOf(whole).Pointer() {
		t.Error("Value decoded again")
	}
	a, _ := m.Find(celtypes.String("a"))
	if reflect.ValueOf(a.Value()).Pointer() != reflect.ValueOf(whole["a"]).Pointer() {
		t.Error("a member's Value is not its parent's")
	}
	b, _ := a.(traits.Mapper).Find(celtypes.String("b"))
	list := b.Value().([]any)
	if &list[0] != &whole["a"].(map[string]any)["b"].([]any)[0] {
		t.Error("a list's Value is not its parent's")
	}
	if list[1].(map[string]any)["d"] != nil {
		t.Errorf("null read natively is %#v, want nil", list[1].(map[string]any)["d"])
	}
	if e, _ := m.Find(celtypes.String("e")); !e.(traits.Zeroer).IsZeroValue() {
		t.Error("an empty list is not a zero value")
	}
}
