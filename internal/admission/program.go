package admission

import (
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
)

// program is one compiled expression: the program the API server's
// admission CEL compiler returns, run as the API server runs it, with its
// cost tracker, its per-call limit and the request's context (eval.go).
// There is no faster path beside it: CEL's static cost estimate is no
// upper bound of what an evaluation costs (flatten() of n lists of n is
// estimated at n), so skipping the tracker where the estimate fits would
// let an expression run past the limit the API server stops it at.
type program struct {
	plugincel.CompilationResult
	// variables is the composition of the policy's variables, which the
	// program reads as variables.NAME; nil for a policy without any.
	variables *plugincel.CompositedCompiler
	// noComprehension: the expression has no comprehension (all,
	// exists, map, filter...), where alone CEL checks whether its context
	// is done, so it is evaluated without the context, as ContextEval
	// would evaluate it, and without starting the timer of the call's
	// deadline (webhooks/admission). The zero value evaluates with it.
	noComprehension bool
}
