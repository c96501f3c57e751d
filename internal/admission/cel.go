package admission

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"

	"github.com/portcullis-io/portcullis/internal/celerr"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/version"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"
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
	// At compile time an expression whose estimated minimum cost is above
	// it is refused: it could never succeed. (The maximum cannot be checked
	// the way CRD validation rules are: object is dynamically typed, so the
	// size of its lists, and the cost of a comprehension over them, is
	// unbounded at compile time.)
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
	// costEnvs declares the same variables over the same base environment,
	// for the cost estimates: the API server's compiler does not return the
	// checked AST that an estimate needs.
	costEnvs *environment.EnvSet
	// untracked plans checked ASTs of costEnvs' StoredExpressions
	// environment without cost tracking (see program.go). Policies are
	// evaluated as stored expressions; new expressions are only checked.
	untracked *cel.Env
}

// NewCompiler builds the admission CEL environment for the API server's
// default compatibility version (environment.DefaultCompatibilityVersion),
// the one a ValidatingAdmissionPolicy is compiled for.
func NewCompiler() (*Compiler, error) {
	base := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	requestType := plugincel.BuildRequestType()
	namespaceType := plugincel.BuildNamespaceType()
	// The declarations of plugincel's createEnvForOpts for
	// OptionalVariableDeclarations{}.
	costEnvs, err := base.Extend(
		environment.VersionedOptions{
			IntroducedVersion: version.MajorMinor(1, 0),
			EnvOptions: []cel.EnvOption{
				cel.Variable(plugincel.ObjectVarName, cel.DynType),
				cel.Variable(plugincel.OldObjectVarName, cel.DynType),
				cel.Variable(plugincel.NamespaceVarName, namespaceType.CelType()),
				cel.Variable(plugincel.RequestVarName, requestType.CelType()),
			},
			DeclTypes: []*apiservercel.DeclType{namespaceType, requestType},
		},
		environment.StrictCostOpt,
	)
	if err != nil {
		return nil, fmt.Errorf("building the admission CEL environment: %w", err)
	}
	untracked, err := untrackedEnv(costEnvs.StoredExpressionsEnv())
	if err != nil {
		return nil, fmt.Errorf("building the admission CEL environment without cost tracking: %w", err)
	}
	return &Compiler{compiler: plugincel.NewCompiler(base), costEnvs: costEnvs, untracked: untracked}, nil
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
// loaded), checks its type and its minimum cost, and returns the compiled
// program or a field error at path.
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
	env, err := c.costEnvs.Env(mode)
	if err != nil {
		return nil, field.InternalError(path, err)
	}
	ast, issues := env.Compile(text)
	if err := issues.Err(); err != nil {
		// The API server's compiler accepted it: the two environments
		// disagree, which is a bug here, not in the policy.
		return nil, field.InternalError(path, fmt.Errorf("estimating the cost: %w", err))
	}
	est, err := env.EstimateCost(ast, &library.CostEstimator{})
	if err != nil {
		return nil, field.InternalError(path, fmt.Errorf("estimating the cost: %w", err))
	}
	if est.Min > ExpressionCostLimit {
		return nil, field.Forbidden(path, fmt.Sprintf(
			"the expression costs at least %d to evaluate, more than the per-call limit of %d: it would always fail",
			est.Min, ExpressionCostLimit))
	}
	var untracked *cel.Env
	if mode == environment.StoredExpressions {
		untracked = c.untracked
	}
	p, err := newProgram(res, env, untracked, ast)
	if err != nil {
		return nil, field.InternalError(path, err)
	}
	return p, nil
}
