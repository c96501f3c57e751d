package admission

import (
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common/decls"

	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/cel/library"
)

// This file lets an expression skip cel-go's per-step cost tracking when
// its cost is bounded anyway.
//
// The API server runs every admission expression with a cost tracker that
// observes each step of the evaluation, so that an expression stops at the
// per-call limit and a request's expressions stop at its budget. That
// observation is most of the price of an expression: a comprehension over
// a pod's three containers takes about 7 µs with it and 2 µs without, and
// allocates ten times as much. But the limits need it only when an
// expression could reach them. CEL's static cost estimate is meant to be
// an upper bound of the cost the tracker counts, given upper bounds of the
// sizes of the inputs (cel-go's checker/cost.go and
// interpreter/runtimecost.go follow one cost model; where the estimate
// falls short of it, a margin covers it: see estimateFactor). The inputs of one request are known before
// any expression runs, so their sizes are bounded too: no string, list or
// map read from object, oldObject, request or namespaceObject is larger
// than the largest of them (sizeBound). So for each request:
//
//   - an expression whose worst case for inputs of that size (CEL's
//     estimate, with a margin: see estimateFactor) is within the per-call
//     limit and within what is left of the request's budget runs without
//     the tracker (the fast program), and is charged its worst case;
//   - any other runs as the API server runs it, tracked step by step and
//     charged what it spent.
//
// Results and errors are the API server's either way
// (TestFastProgramsAsTheAPIServer). The budget is spent more quickly than
// the API server spends it, never more slowly (TestWorstCaseBoundsTheCost):
// a request whose expressions come close to the budget may be stopped a
// little earlier than there, but no expression runs past a limit it would
// have been stopped at.

// program is one compiled expression: the API server's program, which
// tracks cost, and the same checked expression planned without tracking,
// with its worst-case cost by input size.
type program struct {
	// CompilationResult is what the API server's compiler returns; its
	// Program is run when the worst case does not fit.
	plugincel.CompilationResult

	fast cel.Program // nil: always tracked
	ast  *cel.Ast    // checked, for the estimates
	env  *cel.Env    // the environment ast was checked in

	// worst caches worstCase for inputs of at most 1<<class elements, at
	// index class; 0 until estimated (a worst case is never 0: it includes
	// estimateSlack).
	worst [64]atomic.Uint64
}

// sizeClass is the smallest class whose bound, 1<<class, is at least n.
func sizeClass(n uint64) int {
	if n <= 1 {
		return 0
	}
	return min(bits.Len64(n-1), 63)
}

// boundedCost returns the most the expression can cost for inputs of at
// most size elements, and whether that fits the per-call limit.
func (p *program) boundedCost(size uint64) (uint64, bool) {
	if p.fast == nil {
		return 0, false
	}
	class := sizeClass(size)
	w := p.worst[class].Load()
	if w == 0 {
		w = p.worstCase(uint64(1) << class)
		p.worst[class].Store(w)
	}
	if w > ExpressionCostLimit {
		return 0, false
	}
	return w, true
}

// Margin of the worst case over CEL's estimate. The estimate is meant to
// be an upper bound of the tracked cost, but falls short of it in corners
// of cel-go's and the API server's cost models: an expression that ends
// in an error (object.spec.missing.field is estimated 1 and tracked 3),
// isURL, format, optional.or, and indexing a map inside a comprehension
// (10% more than estimated for each iteration). TestWorstCaseBoundsTheCost
// measures them; the largest is three times a tiny estimate and 1.27
// times a larger one. The worst case is taken to be twice the estimate
// plus estimateSlack.
const (
	estimateFactor = 2
	estimateSlack  = 16
)

// worstCase is the most the expression can cost for inputs of at most
// size elements, or math.MaxUint64 when that is unbounded or cannot be
// computed.
func (p *program) worstCase(size uint64) uint64 {
	est, err := p.env.EstimateCost(p.ast, &library.CostEstimator{SizeEstimator: inputSize(size)})
	if err != nil || est.Max > (math.MaxUint64-estimateSlack-1)/estimateFactor {
		return math.MaxUint64
	}
	return estimateFactor*est.Max + estimateSlack
}

// inputSize is a checker.CostEstimator that bounds the size of every value
// read from an admission input by the same number. Other values (literals,
// the results of functions and comprehensions) are left to CEL, which
// sizes them from their inputs or takes them to be unbounded.
type inputSize uint64

var _ checker.CostEstimator = inputSize(0)

// EstimateSize implements checker.CostEstimator. A node's path starts
// with the variable it was read from, through fields, indexes and
// comprehension variables; a value computed along the way starts a path
// of its own, with no variable.
func (s inputSize) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	path := n.Path()
	if len(path) == 0 {
		return nil
	}
	switch path[0] {
	case plugincel.ObjectVarName, plugincel.OldObjectVarName, plugincel.RequestVarName, plugincel.NamespaceVarName:
		return &checker.SizeEstimate{Min: 0, Max: uint64(s)}
	}
	return nil
}

// EstimateCallCost implements checker.CostEstimator: calls are costed by
// the API server's library.CostEstimator, which wraps this one.
func (inputSize) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// untrackedEnv is an environment that plans programs for expressions
// checked in env, with env's functions, types and values, but without
// cost tracking: the API server's environment adds cost tracking to every
// program it plans (environment.MustBaseEnvSet's program options), and a
// program option cannot be taken away.
func untrackedEnv(env *cel.Env) (*cel.Env, error) {
	fns := make([]*decls.FunctionDecl, 0, len(env.Functions()))
	for _, fn := range env.Functions() {
		fns = append(fns, fn)
	}
	return cel.NewCustomEnv(
		// Optional values: their types, and the program option that
		// evaluates or() and orValue() lazily, as the base environment's
		// cel.OptionalTypes does.
		cel.OptionalTypes(),
		cel.Container(env.Container.Name()),
		cel.CustomTypeAdapter(env.CELTypeAdapter()),
		cel.CustomTypeProvider(env.CELTypeProvider()),
		cel.FunctionDecls(fns...),
	)
}

// untrackedProgramOptions are the program options of the API server's
// admission programs (environment's base options, library.Regex's and
// plugincel's compiler's) without the cost tracking ones.
var untrackedProgramOptions = []cel.ProgramOption{
	cel.EvalOptions(cel.OptOptimize),
	cel.OptimizeRegex(library.FindRegexOptimization, library.FindAllRegexOptimization),
	cel.InterruptCheckFrequency(celconfig.CheckFrequency),
}

// newProgram pairs the API server's compiled expression with a program
// planned by untracked from ast, checked in env. With untracked nil
// (expressions that are only checked, never run), it always runs tracked.
func newProgram(res plugincel.CompilationResult, env, untracked *cel.Env, ast *cel.Ast) (*program, error) {
	p := &program{CompilationResult: res, ast: ast, env: env}
	if untracked == nil {
		return p, nil
	}
	fast, err := untracked.Program(ast, untrackedProgramOptions...)
	if err != nil {
		return nil, fmt.Errorf("planning the expression without cost tracking: %w", err)
	}
	p.fast = fast
	return p, nil
}
