package admission

import (
	"errors"
	"strings"

	"github.com/google/cel-go/cel"

	"github.com/portcullis-io/portcullis/internal/celerr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/environment"
)

// CEL limits. Each is the API server's own number for
// ValidatingAdmissionPolicy, so a policy that the API server would run
// runs here too, at the same price.
const (
	// RequestCostBudget is the CEL cost one admission request may spend
	// across every policy it matches, conditions and messageExpressions
	// included. It is the API server's budget for one
	// ValidatingAdmissionPolicy binding (celconfig.RuntimeCELCostBudget,
	// roughly a second of CEL). The API server spends it per binding, in
	// process; we spend it per request, because one webhook call evaluates
	// every policy and must answer within the webhook's timeout (10 s by
	// default, 30 s at most) however many policies match. A policy evaluated
	// after the budget is spent reports an error.
	RequestCostBudget = celconfig.RuntimeCELCostBudget

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
// returns the compiled program or a field error at path.
func (c *Compiler) compile(path *field.Path, text string, returns *cel.Type, mode environment.Type) (*program, *field.Error) {
	if strings.TrimSpace(text) == "" {
		return nil, field.Required(path, "a CEL expression")
	}
	if c == nil {
		return nil, field.InternalError(path, errNoCompiler)
	}
	res := c.compiler.CompileCELExpression(&expression{text: text, returns: returns}, celVariables, mode)
	if res.Error != nil {
		return nil, celerr.FieldError(path, text, res.Error)
	}
	return &program{CompilationResult: res}, nil
}
