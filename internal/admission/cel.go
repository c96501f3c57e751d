package admission

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"

	"github.com/portcullis-io/portcullis/internal/celerr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
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
// params is declared in the scope of a policy with a paramKind (see
// scope), as for a ValidatingAdmissionPolicy, and the webhook has no
// authorizer to offer without an API call on the request path, so an
// expression naming authorizer is refused when it is compiled rather than
// failing when it runs. variables is declared in the scope of a policy
// that has spec.variables (see scope).
var celVariables = plugincel.OptionalVariableDeclarations{}

// mutationVariables adds the types that mutation expressions build their
// results from: Object{...} apply configurations and JSONPatch{...}
// operations, as for a MutatingAdmissionPolicy's mutations.
var mutationVariables = plugincel.OptionalVariableDeclarations{HasPatchTypes: true}

// Compiler compiles the CEL expressions of admission policies in the API
// server's own admission CEL environment: the same variables and function
// library as a ValidatingAdmissionPolicy, the same type checking, and the
// same per-call cost limit. Building it extends the API server's base
// environment several times: build it once with NewCompiler and share it;
// it is safe for concurrent use.
type Compiler struct {
	// base is the API server's base environment, which a policy with
	// variables extends with its own (scope).
	base *environment.EnvSet
	// compiler is the API server's admission CEL compiler; every program
	// it returns is the one the API server would run.
	compiler plugincel.Compiler
}

// NewCompiler builds the admission CEL environment for the API server's
// default compatibility version (environment.DefaultCompatibilityVersion),
// the one a ValidatingAdmissionPolicy is compiled for.
func NewCompiler() (*Compiler, error) {
	base := environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion())
	return &Compiler{base: base, compiler: plugincel.NewCompiler(base)}, nil
}

// expression is one CEL expression and the types it may return.
type expression struct {
	text    string
	returns []*cel.Type
}

var _ plugincel.ExpressionAccessor = (*expression)(nil)

func (e *expression) GetExpression() string    { return e.text }
func (e *expression) ReturnTypes() []*cel.Type { return e.returns }

// variable is one spec.variables entry, as the API server's compiler
// takes it.
type variable struct {
	expression
	name string
}

func (v *variable) GetName() string { return v.name }

// errNoCompiler is a wiring bug: a policy has CEL and the caller passed no
// Compiler.
var errNoCompiler = errors.New("no CEL compiler to compile expressions with")

// scope compiles the expressions of one policy: in the shared environment,
// or, for a policy with variables, in the API server's composited
// environment, where variables.NAME has the type of its expression and is
// evaluated lazily, once, when first read (plugincel.CompositedCompiler,
// as for a ValidatingAdmissionPolicy's or MutatingAdmissionPolicy's
// variables).
type scope struct {
	compiler plugincel.Compiler
	// hasParams declares params, for a policy with a paramKind.
	hasParams bool
	// variables is the policy's composition, nil without variables.
	variables *plugincel.CompositedCompiler
	mode      environment.Type
	// env parses expressions as the compiler does (reads); nil without
	// a Compiler.
	env *cel.Env
}

// celIdentifier is what a variable's name must be: a CEL identifier that
// is not a reserved word (as the API server requires of a policy's
// variable names).
var celIdentifier = regexp.MustCompile(`^[_a-zA-Z][_a-zA-Z0-9]*$`)

var celReserved = map[string]bool{
	"true": true, "false": true, "null": true, "in": true, "as": true, "break": true, "const": true,
	"continue": true, "else": true, "for": true, "function": true, "if": true, "import": true,
	"let": true, "loop": true, "package": true, "namespace": true, "return": true, "var": true,
	"void": true, "while": true,
}

// scope compiles a policy's variables (path is spec.variables) and returns
// the scope its other expressions are compiled in. A variable whose name is
// invalid is an error of the policy (errs); one whose expression does not
// compile is an error of what reads it (exprErrs), as in the API server,
// where reading it fails.
func (c *Compiler) scope(vars []admissionregistrationv1.Variable, hasParams bool, path *field.Path, mode environment.Type) (s *scope, errs, exprErrs field.ErrorList) {
	if c == nil {
		return &scope{mode: mode, hasParams: hasParams}, nil, nil
	}
	s = &scope{compiler: c.compiler, mode: mode, hasParams: hasParams}
	s.env, _ = c.base.Env(mode)
	if len(vars) == 0 {
		return s, nil, nil
	}
	comp, err := plugincel.NewCompositedCompiler(c.base)
	if err != nil {
		return s, field.ErrorList{field.InternalError(path, fmt.Errorf("building the CEL environment for variables: %w", err))}, nil
	}
	s.compiler, s.variables = comp, comp
	seen := make(map[string]bool, len(vars))
	for i := range vars {
		v, ip := &vars[i], path.Index(i)
		switch {
		case v.Name == "":
			errs = append(errs, field.Required(ip.Child("name"), "a variable has a name"))
			continue
		case !celIdentifier.MatchString(v.Name) || celReserved[v.Name]:
			errs = append(errs, field.Invalid(ip.Child("name"), v.Name, "must be a valid CEL identifier"))
			continue
		case seen[v.Name]:
			errs = append(errs, field.Duplicate(ip.Child("name"), v.Name))
			continue
		}
		seen[v.Name] = true
		if strings.TrimSpace(v.Expression) == "" {
			errs = append(errs, field.Required(ip.Child("expression"), "a CEL expression"))
			continue
		}
		res := comp.CompileAndStoreVariable(&variable{expression: expression{text: v.Expression, returns: []*cel.Type{cel.AnyType, cel.DynType}}, name: v.Name}, s.declarations(celVariables), mode)
		if res.Error != nil {
			exprErrs = append(exprErrs, celerr.FieldError(ip.Child("expression"), v.Expression, res.Error))
		}
	}
	return s, errs, exprErrs
}

// declarations are opts with the scope's params.
func (s *scope) declarations(opts plugincel.OptionalVariableDeclarations) plugincel.OptionalVariableDeclarations {
	opts.HasParams = opts.HasParams || s.hasParams
	return opts
}

// compile compiles one expression for the scope's environment mode
// (NewExpressions when a policy is being written, StoredExpressions when
// a stored one is loaded) with the API server's compiler, which checks
// that it returns one of returns, and returns the compiled program, and a
// field error at path when it does not compile: the program then carries
// the compilation error, which evaluating it reports, as the API server's
// does. opts adds the mutation types for mutation expressions.
func (s *scope) compile(path *field.Path, text string, opts plugincel.OptionalVariableDeclarations, returns ...*cel.Type) (*program, *field.Error) {
	if strings.TrimSpace(text) == "" {
		return errProgram(text, "no expression"), field.Required(path, "a CEL expression")
	}
	if s.compiler == nil {
		return errProgram(text, errNoCompiler.Error()), field.InternalError(path, errNoCompiler)
	}
	res := s.compiler.CompileCELExpression(&expression{text: text, returns: returns}, s.declarations(opts), s.mode)
	p := &program{CompilationResult: res, variables: s.variables, noComprehension: !s.comprehends(text)}
	if res.Error != nil {
		return p, celerr.FieldError(path, text, res.Error)
	}
	return p, nil
}

// errProgram is a program that did not compile, for what, as the API
// server's compiler returns one.
func errProgram(text, what string) *program {
	return &program{CompilationResult: plugincel.CompilationResult{
		ExpressionAccessor: &expression{text: text},
		Error:              &apiservercel.Error{Type: apiservercel.ErrorTypeInvalid, Detail: what},
	}}
}

// comprehends reports whether text, parsed in the scope's environment
// with its macros expanded as the compiler expands them, has a
// comprehension; an expression it cannot parse (or a scope without an
// environment) counts as one.
func (s *scope) comprehends(text string) bool {
	if s.env == nil {
		return true
	}
	parsed, iss := s.env.Parse(text)
	if iss.Err() != nil {
		return true
	}
	return len(celast.MatchDescendants(celast.NavigateAST(parsed.NativeRep()), celast.KindMatcher(celast.ComprehensionKind))) > 0
}

// reads is what an expression reads of the inputs that decide whether the
// API server can evaluate it where the webhook does: namespaceObject, and
// the policy's variables by name.
type reads struct {
	namespaceObject bool
	// allVariables: it reads variables otherwise than as variables.NAME
	// (whole, or as variables.?NAME), so any of them.
	allVariables bool
	variables    []string
}

// reads parses text in the scope's environment, with its macros expanded
// as the compiler expands them, and walks its AST for the identifiers
// namespaceObject and variables. It errs towards reading: a comprehension
// variable of either name counts too, and an expression it cannot parse
// (or a scope without an environment) reads everything.
func (s *scope) reads(text string) reads {
	all := reads{namespaceObject: true, allVariables: true}
	if s.env == nil {
		return all
	}
	parsed, iss := s.env.Parse(text)
	if iss.Err() != nil {
		return all
	}
	var r reads
	for _, e := range celast.MatchDescendants(celast.NavigateAST(parsed.NativeRep()), celast.KindMatcher(celast.IdentKind)) {
		switch e.AsIdent() {
		case "namespaceObject":
			r.namespaceObject = true
		case "variables":
			if p, ok := e.Parent(); ok && p.Kind() == celast.SelectKind && p.AsSelect().Operand().ID() == e.ID() {
				if name := p.AsSelect().FieldName(); !slices.Contains(r.variables, name) {
					r.variables = append(r.variables, name)
				}
				continue
			}
			r.allVariables = true
		}
	}
	return r
}
