package admission

import (
	"context"
	"fmt"
	"math"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/interpreter"

	admissionv1 "k8s.io/api/admission/v1"
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
	object, oldObject any
	// request is built from requestOf when an expression first reads it:
	// most read only the object.
	request   any
	requestOf func() *admissionv1.AdmissionRequest
	// namespace is built from namespaceOf when an expression first reads
	// it, or is the error of looking the namespace up (see
	// Request.namespaceObject).
	namespace   any
	namespaceOf func() any
	// variables is the lazily evaluated variables of the policy being
	// evaluated (see Request.variablesFor), nil when it has none.
	variables any
	// params is the parameter object the policy is being evaluated with,
	// null without one (see Request.setParams).
	params any
}

var _ interpreter.Activation = (*activation)(nil)

// newActivation is the activation of a request whose object and
// oldObject are already CEL values (objectValue, celValueOfJSON).
func newActivation(object, oldObject any, request func() *admissionv1.AdmissionRequest, namespace func() any) *activation {
	return &activation{
		object:      object,
		oldObject:   oldObject,
		requestOf:   request,
		namespaceOf: namespace,
	}
}

// setObject sets object, when it is first converted or after a mutation.
func (a *activation) setObject(o *unstructured.Unstructured) {
	a.object = objectValue(o)
}

// objectValue is an object as a CEL variable: null when absent, as in the
// API server (a nil ref.Val).
func objectValue(o *unstructured.Unstructured) any {
	if o == nil {
		return nil
	}
	return celValue(o.Object)
}

// celValue converts decoded JSON into CEL values, the whole tree at once.
// The API server wraps the unstructured map (types.DefaultTypeAdapter's
// NativeToValue), which converts each member again every time an
// expression reads it: a comprehension over a pod's containers in each of
// 100 policies reads the same members hundreds of times. Converting once
// per request costs less than decoding the JSON did, and gives every
// expression the same values: maps of strings, lists, and leaves converted
// by the same adapter. Sizes are the same, so the cost tracker counts the
// same cost (TestEvaluateAsTheAPIServer).
func celValue(v any) ref.Val {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[ref.Val]ref.Val, len(x))
		for k, e := range x {
			m[types.String(k)] = celValue(e)
		}
		return nativeMap{Mapper: types.NewRefValMap(types.DefaultTypeAdapter, m), native: x}
	case []any:
		l := make([]ref.Val, len(x))
		for i, e := range x {
			l[i] = celValue(e)
		}
		return &nativeList{Lister: types.NewRefValList(types.DefaultTypeAdapter, l), elems: l, native: x}
	case string:
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

// nativeMap and nativeList are the maps and lists of object values (of
// celValue, and nativeList of celValueOfJSON too): CEL values whose Value
// is the decoded JSON, as the Value of the API server's
// (types.DefaultTypeAdapter over the unstructured object) is. What reads a
// value natively sees what the API server's would: an applyConfiguration
// that copies a list of containers from object is merged from maps of
// strings, not from CEL values (upstream's conversion calls Value on a
// list's elements).
type (
	nativeMap struct {
		traits.Mapper
		native map[string]any
	}
	nativeList struct {
		traits.Lister
		elems []ref.Val
		// native is Value: the JSON the list was converted from, or built
		// once from its elements' Values (read from the JSON, each
		// decoded once however deep a native walk goes).
		native []any
	}
)

var _ traits.Zeroer = nativeMap{}
var _ traits.Zeroer = (*nativeList)(nil)

func (m nativeMap) Value() any          { return m.native }
func (m nativeMap) IsZeroValue() bool   { return len(m.native) == 0 }
func (l *nativeList) IsZeroValue() bool { return len(l.elems) == 0 }

func (l *nativeList) Value() any {
	if l.native == nil {
		l.native = make([]any, len(l.elems))
		for i, e := range l.elems {
			l.native[i] = nativeOf(e)
		}
	}
	return l.native
}

func (m nativeMap) ConvertToType(t ref.Type) ref.Val {
	if t == types.MapType {
		return m
	}
	return m.Mapper.ConvertToType(t)
}

func (l *nativeList) ConvertToType(t ref.Type) ref.Val {
	if t == types.ListType {
		return l
	}
	return l.Lister.ConvertToType(t)
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case plugincel.ObjectVarName:
		return a.object, true
	case plugincel.OldObjectVarName:
		return a.oldObject, true
	case plugincel.RequestVarName:
		if a.request == nil {
			a.request = common.SchemalessTypedToVal(a.requestOf())
		}
		return a.request, true
	case plugincel.NamespaceVarName:
		if a.namespace == nil && a.namespaceOf != nil {
			a.namespace, a.namespaceOf = a.namespaceOf(), nil
		}
		return a.namespace, true
	case variablesVarName:
		return a.variables, a.variables != nil
	case plugincel.ParamsVarName:
		return a.params, true
	}
	return nil, false
}

// variablesVarName is how expressions read a policy's variables.
const variablesVarName = "variables"

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// errBudgetSpent is the error of a CEL evaluation attempted after the
// policy's cost budget is spent.
var errBudgetSpent = &apiservercel.Error{
	Type:   apiservercel.ErrorTypeInvalid,
	Detail: "the policy's CEL cost budget is spent, so the expression was not evaluated",
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

// variablesFor returns the composition context of a policy's variables
// for this request, and sets them in act: built once per policy and
// object, so each variable is evaluated at most once for the policy's
// expressions on one object (a mutation that changes the object starts
// anew, as each of a MutatingAdmissionPolicy's mutations does).
func (r *Request) variablesFor(ctx context.Context, vars *plugincel.CompositedCompiler, act *activation) plugincel.CompositionContext {
	if r.vars.owner != vars || r.vars.objectGen != r.objectGen || r.vars.paramGen != r.paramGen || r.vars.ctx == nil {
		cc := vars.CreateContext(ctx)
		act.variables = nil
		r.vars = variableState{owner: vars, objectGen: r.objectGen, paramGen: r.paramGen, ctx: cc, value: cc.Variables(act)}
	}
	act.variables = r.vars.value
	return r.vars.ctx
}

// evaluateOne is plugincel's evaluationActivation.Evaluate (which is not
// exported) over the request's shared activation: the API server's
// program, its cost tracker and per-call limit, interrupted when ctx is
// done (in a comprehension: where CEL looks), charged what it spent.
func (r *Request) evaluateOne(ctx context.Context, act *activation, p *program) (plugincel.EvaluationResult, error) {
	res := plugincel.EvaluationResult{ExpressionAccessor: p.ExpressionAccessor}
	if p.Error != nil {
		// As the API server reports an expression that did not compile.
		res.Error = &apiservercel.Error{Type: apiservercel.ErrorTypeInvalid, Detail: fmt.Sprintf("compilation error: %v", p.Error), Cause: p.Error}
		return res, nil
	}
	if p.Program == nil {
		// Policies are only compiled without errors: a bug.
		res.Error = &apiservercel.Error{Type: apiservercel.ErrorTypeInternal, Detail: "unexpected internal error compiling expression"}
		return res, nil
	}
	var composition plugincel.CompositionContext
	if p.variables != nil {
		// The policy's variables, evaluated when the program first reads
		// each, in their composition context, which accounts for their
		// cost; the program is charged what they cost it.
		composition = r.variablesFor(ctx, p.variables, act)
		ctx = composition
	}
	var val ref.Val
	var details *cel.EvalDetails
	var err error
	if p.noComprehension {
		val, details, err = p.Program.Eval(act)
	} else {
		val, details, err = p.Program.ContextEval(ctx, act)
	}
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
	spent := *cost
	if composition != nil {
		if vc := composition.GetAndResetCost(); vc > 0 {
			spent += uint64(vc)
		}
	}
	if spent > math.MaxInt64 || int64(spent) > r.budget {
		r.budget = 0
		return res, &apiservercel.Error{
			Type:   apiservercel.ErrorTypeInvalid,
			Detail: "validation failed due to running out of cost budget, no further validation rules will be run",
			Cause:  apiservercel.ErrOutOfBudget,
		}
	}
	r.budget -= int64(spent)
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
