package admission

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/common"
)

// This file evaluates compiled expressions as the API server's
// plugincel.ConditionEvaluator.ForInput does (its variables and its cost
// accounting, without variable composition, which policies do not have),
// with one difference: the activation is built once per request and
// shared by every policy, not built again for each, and its objects are
// converted to CEL values once. With 100 policies, building and
// converting again for each was most of the cost of a decision.
// TestEvaluateAsTheAPIServer checks that both give the same results.

// activation is the CEL variables of one request: request and
// namespaceObject as the API server converts them
// (common.SchemalessTypedToVal), object and oldObject converted once into
// CEL values (see celValue). It is used by one goroutine.
type activation struct {
	object, oldObject, request, namespace any

	// objectSize and otherSize bound the size of every string, list and
	// map in object, and in the other variables: see sizeBound.
	objectSize, otherSize uint64
}

var _ interpreter.Activation = (*activation)(nil)

func newActivation(object, oldObject *unstructured.Unstructured, request *admissionv1.AdmissionRequest, ns *corev1.Namespace) *activation {
	a := &activation{
		request:   common.SchemalessTypedToVal(request),
		namespace: common.SchemalessTypedToVal(ns),
	}
	a.setObject(object)
	var oldSize uint64
	a.oldObject, oldSize = objectValue(oldObject)
	a.otherSize = max(oldSize, largestIn(reflect.ValueOf(request)), largestIn(reflect.ValueOf(ns)))
	return a
}

// timeType is time.Time, which CEL sees as a timestamp or a short string,
// not as the fields it is made of.
var timeType = reflect.TypeFor[time.Time]()

// largestIn is the size of the largest string, list or map in v, which
// is one of the typed Kubernetes objects that CEL reads with
// common.SchemalessTypedToVal. Raw JSON (a RawExtension's bytes) counts
// its length, which bounds any value decoded from it.
func largestIn(v reflect.Value) uint64 {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return 0
		}
		return largestIn(v.Elem())
	case reflect.String:
		return uint64(v.Len())
	case reflect.Slice, reflect.Array:
		n := uint64(v.Len())
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return n
		}
		for i := range v.Len() {
			n = max(n, largestIn(v.Index(i)))
		}
		return n
	case reflect.Map:
		n := uint64(v.Len())
		for it := v.MapRange(); it.Next(); {
			n = max(n, largestIn(it.Key()), largestIn(it.Value()))
		}
		return n
	case reflect.Struct:
		if v.Type() == timeType {
			return 64 // an RFC 3339 timestamp, at most 35 characters
		}
		var n uint64
		for i := range v.NumField() {
			n = max(n, largestIn(v.Field(i)))
		}
		return n
	}
	return 0
}

// setObject sets object, when it is first converted or after a mutation.
func (a *activation) setObject(o *unstructured.Unstructured) {
	a.object, a.objectSize = objectValue(o)
}

// sizeBound is at least the size (as CEL's size() counts it) of every
// string, list and map the request's variables hold, for the cost
// estimates of program.go.
func (a *activation) sizeBound() uint64 { return max(a.objectSize, a.otherSize) }

// objectValue is an object as a CEL variable: null when absent, as in the
// API server (a nil ref.Val); and the size of its largest string, list
// or map.
func objectValue(o *unstructured.Unstructured) (any, uint64) {
	if o == nil {
		return nil, 0
	}
	var size uint64
	return celValue(o.Object, &size), size
}

// celValue converts decoded JSON into CEL values, the whole tree at once.
// The API server wraps the unstructured map (types.DefaultTypeAdapter's
// NativeToValue), which converts each member again every time an
// expression reads it: a comprehension over a pod's containers in each of
// 100 policies reads the same members hundreds of times. Converting once
// per request costs less than decoding the JSON did, and gives every
// expression the same values: maps of strings, lists, and leaves converted
// by the same adapter.
//
// size is raised to the size of the largest string, list or map in v, in
// bytes for a string (at least its number of characters, which size()
// counts).
func celValue(v any, size *uint64) ref.Val {
	switch x := v.(type) {
	case map[string]any:
		*size = max(*size, uint64(len(x)))
		m := make(map[ref.Val]ref.Val, len(x))
		for k, e := range x {
			*size = max(*size, uint64(len(k)))
			m[types.String(k)] = celValue(e, size)
		}
		return types.NewRefValMap(types.DefaultTypeAdapter, m)
	case []any:
		*size = max(*size, uint64(len(x)))
		l := make([]ref.Val, len(x))
		for i, e := range x {
			l[i] = celValue(e, size)
		}
		return types.NewRefValList(types.DefaultTypeAdapter, l)
	case string:
		*size = max(*size, uint64(len(x)))
		return types.String(x)
	case int64:
		return types.Int(x)
	case float64:
		return types.Double(x)
	case bool:
		return types.Bool(x)
	default:
		return types.DefaultTypeAdapter.NativeToValue(v)
	}
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case plugincel.ObjectVarName:
		return a.object, true
	case plugincel.OldObjectVarName:
		return a.oldObject, true
	case plugincel.RequestVarName:
		return a.request, true
	case plugincel.NamespaceVarName:
		return a.namespace, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// errBudgetSpent is the error of a CEL evaluation attempted after the
// request's cost budget is spent.
var errBudgetSpent = &apiservercel.Error{
	Type:   apiservercel.ErrorTypeInvalid,
	Detail: fmt.Sprintf("the request's CEL cost budget (%d) is spent, so the expression was not evaluated", RequestCostBudget),
	Cause:  apiservercel.ErrOutOfBudget,
}

// evaluate evaluates programs for the request in order, drawing on its
// budget, and appends their results to dst. The error is for the whole
// evaluation (inputs that could not be built, the budget spent), after
// which no further expression is evaluated; an expression's own error is
// in its result.
func (r *Request) evaluate(ctx context.Context, programs []*program, dst []plugincel.EvaluationResult) ([]plugincel.EvaluationResult, error) {
	if r.budget <= 0 {
		return dst, errBudgetSpent
	}
	act, err := r.celInputs()
	if err != nil {
		return dst, err
	}
	for _, p := range programs {
		res, err := r.evaluateOne(ctx, act, p)
		if err != nil {
			return dst, err
		}
		dst = append(dst, res)
	}
	return dst, nil
}

// evaluateOne is plugincel's evaluationActivation.Evaluate, but for an
// expression whose worst case fits the limits, which runs untracked (see
// program.go).
func (r *Request) evaluateOne(ctx context.Context, act *activation, p *program) (plugincel.EvaluationResult, error) {
	res := plugincel.EvaluationResult{ExpressionAccessor: p.ExpressionAccessor}
	if p.Program == nil {
		// Policies are only compiled without errors: a bug.
		res.Error = &apiservercel.Error{Type: apiservercel.ErrorTypeInternal, Detail: "unexpected internal error compiling expression"}
		return res, nil
	}
	// An untracked expression is not interrupted when ctx is done: it
	// runs to the end, as bounded as the limits bound it, without the
	// price of a cancellable context for each expression. One that would
	// start after ctx is done runs tracked, and stops as in the API server.
	if worst, ok := p.boundedCost(act.sizeBound()); ok && worst <= uint64(r.budget) && ctx.Err() == nil {
		val, _, err := p.fast.Eval(act)
		r.budget -= int64(worst)
		return evaluated(res, val, err), nil
	}
	val, details, err := p.Program.ContextEval(ctx, act)
	if details == nil {
		return res, &apiservercel.Error{
			Type:   apiservercel.ErrorTypeInternal,
			Detail: fmt.Sprintf("runtime cost could not be calculated for expression: %v, no further expression will be run", p.ExpressionAccessor.GetExpression()),
		}
	}
	cost := details.ActualCost()
	if cost == nil {
		return res, &apiservercel.Error{
			Type:   apiservercel.ErrorTypeInvalid,
			Detail: fmt.Sprintf("runtime cost could not be calculated for expression: %v, no further expression will be run", p.ExpressionAccessor.GetExpression()),
			Cause:  apiservercel.ErrOutOfBudget,
		}
	}
	if *cost > math.MaxInt64 || int64(*cost) > r.budget {
		r.budget = 0
		return res, &apiservercel.Error{
			Type:   apiservercel.ErrorTypeInvalid,
			Detail: "validation failed due to running out of cost budget, no further validation rules will be run",
			Cause:  apiservercel.ErrOutOfBudget,
		}
	}
	r.budget -= int64(*cost)
	return evaluated(res, val, err), nil
}

// evaluated completes res with an evaluation's value or error.
func evaluated(res plugincel.EvaluationResult, val ref.Val, err error) plugincel.EvaluationResult {
	if err != nil {
		res.Error = &apiservercel.Error{
			Type:   apiservercel.ErrorTypeInvalid,
			Detail: fmt.Sprintf("expression '%v' resulted in error: %v", res.ExpressionAccessor.GetExpression(), err),
		}
		return res
	}
	res.EvalResult = val
	return res
}
