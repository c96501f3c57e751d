package admission

import (
	"errors"
	"strings"

	"github.com/google/cel-go/cel"

	"github.com/portcullis-io/portcullis/internal/celerr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
)

// CEL limits. Each is the API server's own number for
// ValidatingAdmissionPolicy, so a policy that the API server would run
// runs here too, at the same price.
const (
	// RequestCostBudget is the CEL cost one policy's validations and
	// messageExpressions may spend on one request: the API server's budget
	// for one ValidatingAdmissionPolicy binding (celconfig.RuntimeCELCostBudget,
	// roughly a second of CEL). Each policy has its own, as each binding
	// has in the API server, so one policy (or an object built to make it
	// expensive) cannot spend the budget of the policies after it. What
	// bounds a whole webhook call is its deadline, the webhook's timeout:
	// an expression still running then stops with an error of its policy.
	RequestCostBudget = celconfig.RuntimeCELCostBudget

	// ConditionsCostBudget is what one policy's match conditions may
	// spend on one request (celconfig.RuntimeCELCostBudgetMatchConditions,
	// the API server's budget for a policy's matchConditions).
	ConditionsCostBudget = celconfig.RuntimeCELCostBudgetMatchConditions

	// ExpressionCostLimit is the cost one evaluation of one expression may
	// reach (celconfig.PerCallLimit, roughly 0.1 s). The API server's base
	// CEL environment compiles every program with it (cel.CostLimit), so an
	// evaluation that reaches it stops with an error instead of running on.
	// Nothing is refused at compile time for its estimated cost, as the API
	// server refuses nothing in a ValidatingAdmissionPolicy for it: object
	// is dynamically typed, so CEL can bound neither the size of its lists
	// nor, for some valid expressions (lists.range(object.spec.n), a
	// flatten() of computed depth), even the least an evaluation costs.
	ExpressionCostLimit = celconfig.PerCallLimit

	// maxMessageBytes caps a message computed by a messageExpression, as
	// the API server does (celconfig.MaxEvaluatedMessageExpressionSizeBytes):
	// a longer one falls back to the static message.
	maxMessageBytes = celconfig.MaxEvaluatedMessageExpressionSizeBytes
)

// celVariables says which optional variables admission CEL declares.
// Besides object, oldObject, request and namespaceObject, which are always
// declared, a ValidatingAdmissionPolicy may have params and authorizer.
// Ours have neither: policies have no paramKind, so params is not
// declared (as for a ValidatingAdmissionPolicy without one), and the
// webhook has no authorizer to offer without an API call on the request
// path, so an expression naming authorizer is refused when it is compiled
// rather than failing when it runs. variables is not declared either:
// policies have no spec.variables.
var celVariables = plugincel.OptionalVariableDeclarations{}

// Compiler compiles the CEL expressions of admission policies in the API
// server's own admission CEL environment: the same variables and function
// library as a ValidatingAdmissionPolicy, the same type checking, and the
// same per-call cost limit. Building it extends the API server's base
// environment several times: build it once with NewCompiler and share it;
// it is safe for concurrent use.
type Compiler struct {
	// compiler is the API server's admission CEL compiler; every program
	// it returns is the one the API server would run.
	compiler plugincel.Compiler
}

// NewCompiler builds the admission CEL environment for the API server's
// default compatibility version (environment.DefaultCompatibilityVersion),
// the one a ValidatingAdmissionPolicy is compiled for.
func NewCompiler() (*Compiler, error) {
	base := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	return &Compiler{compiler: plugincel.NewCompiler(base)}, nil
}

// expression is one CEL expression and the type it must return.
type expression struct {
	text    string
	returns *cel.Type
}

var _ plugincel.ExpressionAccessor = (*expression)(nil)

func (e *expression) GetExpression() string    { return e.text }
func (e *expression) ReturnTypes() []*cel.Type { return []*cel.Type{e.returns} }

// errNoCompiler is a wiring bug: a policy has CEL and the caller passed no
// Compiler.
var errNoCompiler = errors.New("no CEL compiler to compile expressions with")

// compile compiles one expression for the environment mode (NewExpressions
// when a policy is being written, StoredExpressions when a stored one is
// loaded) with the API server's compiler, which checks its type, and
// returns the compiled program, and a field error at path when it does not
// compile: the program then carries the compilation error, which
// evaluating it reports, as the API server's does.
func (c *Compiler) compile(path *field.Path, text string, returns *cel.Type, mode environment.Type) (*program, *field.Error) {
	if strings.TrimSpace(text) == "" {
		return errProgram(text, "no expression"), field.Required(path, "a CEL expression")
	}
	if c == nil {
		return errProgram(text, errNoCompiler.Error()), field.InternalError(path, errNoCompiler)
	}
	res := c.compiler.CompileCELExpression(&expression{text: text, returns: returns}, celVariables, mode)
	if res.Error != nil {
		return &program{CompilationResult: res}, celerr.FieldError(path, text, res.Error)
	}
	return &program{CompilationResult: res}, nil
}

// errProgram is a program that did not compile, for what, as the API
// server's compiler returns one.
func errProgram(text, what string) *program {
	return &program{CompilationResult: plugincel.CompilationResult{
		ExpressionAccessor: &expression{text: text},
		Error:              &apiservercel.Error{Type: apiservercel.ErrorTypeInvalid, Detail: what},
	}}
}
