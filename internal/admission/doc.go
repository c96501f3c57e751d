// Package admission is the admission engine: MutationPolicy and
// ValidationPolicy compiled once, published as immutable snapshots, and
// evaluated against an AdmissionReview's request with no API call, lock or
// per-policy decoding on the request path.
//
// # Compiling
//
// CompileMutationPolicy and CompileValidationPolicy compile a stored
// policy; ValidateMutationPolicy and ValidateValidationPolicy report the
// same errors for a policy being written, for the validating webhook.
// Errors are a field.ErrorList with paths rooted at "spec"
// (spec.match.resources[0].operations[1], spec.validations[2].expression,
// spec.mutations[1].jsonPatch). The webhook refuses a policy with any
// error. A stored one that does not compile (after an upgrade, or written
// past the webhook) is served broken, never dropped: what compiled of its
// match (a rule at fault widened to "*", a bad selector or condition
// dropped, which widens it) decides what it applies to, and its failure
// policy decides those requests. A ValidationPolicy whose only errors are
// in validation expressions or messageExpressions is served whole, as the
// API server serves a ValidatingAdmissionPolicy: a validation that does
// not compile is an error whenever it is evaluated, a messageExpression
// that does not compile falls back to the message.
//
// CEL is compiled by the API server's own admission compiler (plugincel)
// in its base environment for the default compatibility version, the one
// a ValidatingAdmissionPolicy gets: the same function library, the
// variables object, oldObject, request and namespaceObject with the same
// types, type checking at compile time, and the same per-call cost limit
// at run time. params is not declared (policies have no paramKind), nor
// authorizer (the webhook has no authorizer without an API call on the
// request path) nor variables: an expression naming one is refused when
// compiled. Stored policies compile as environment.StoredExpressions and
// policies being written as environment.NewExpressions, as the API server
// does. Build the Compiler once (NewCompiler) and share it.
//
// # Matching
//
// spec.match is checked cheapest first: resource rules, excludedNamespaces,
// namespaceSelector, objectSelector, then the CEL conditions.
//
//   - Rules match request.resource, request.subResource and
//     request.operation exactly as a webhook rule does: "*" is every
//     resource but no subresource, "pods/*" is pods and all of its
//     subresources, "*/scale" every scale subresource, "*/*" everything.
//     Rules are validated as the API server validates a webhook's, so
//     Rules (per policy) and the snapshots' Rules (their union) can narrow
//     the operator's webhook configurations.
//   - excludedNamespaces are never matched; a Namespace object is in the
//     namespace it names.
//   - namespaceSelector selects objects by their namespace's labels and a
//     Namespace by its own (the new object's on CREATE and UPDATE). An
//     empty or absent selector matches everything; any other never
//     matches a cluster-scoped object that is not a Namespace. (A
//     webhook's namespaceSelector never excludes cluster-scoped objects;
//     a policy's does, so that a selector naming a team's namespaces is
//     not applied to ClusterRoles.) A namespace missing from the cache is
//     an error: the API server does not admit objects into namespaces that
//     do not exist, so the cache lags.
//   - objectSelector matches when the new or the old object's labels do,
//     as for webhooks (DELETE has only the old object).
//   - conditions are evaluated like a webhook's matchConditions: any false
//     condition is no match; otherwise any error is an error for the
//     policy.
//
// # Mutating
//
// MutationEngine.Mutate applies every matching MutationPolicy of a CREATE
// or UPDATE request in order (spec.order, then name), each seeing the
// object as the previous ones left it, and returns one RFC 6902 patch,
// computed by difference from the object as sent (gomodules.xyz/jsonpatch,
// controller-runtime's format), and which policies changed it. The object
// is decoded once and encoded once however many policies apply.
//
// Mutations are idempotent: applying a policy set to its own output
// changes nothing, or a policy that does is an error of its own (see
// Mutate). setLabels and setAnnotations keep an existing value unless
// overwrite is set. mergePatch is RFC 7386. jsonPatch is RFC 6902 as the
// API server's MutatingAdmissionPolicy applies it (patch.go): a failed
// test skips that jsonPatch; add and replace may not set null. A policy
// that fails to apply, or whose JSON or merge patch leaves a value the
// kind's schema refuses (schemacheck.go), is rolled back and reported,
// never half-applied.
//
// # Validating
//
// ValidationEngine.Validate evaluates every matching ValidationPolicy and
// every validation in it, and returns data: Denials (Deny policies),
// Warnings (Warn) and Audits (Audit), each with the message the API server
// would pick (messageExpression's non-empty single-line result, else
// message, else "failed expression: EXPRESSION"), and Errors for policies
// that could not be evaluated. Each policy's errors are handled by its
// failure policy: under Fail as failed validations of its action (a Deny
// policy's are Denials, Warn's warnings, Audit's audit entries), under
// Ignore not at all; Err is non-nil only before the first full sync.
// Audits are returned under one audit annotation key,
// AuditKeyValidationFailure, as a JSON list.
//
// # Cost
//
// Each policy's validations and messageExpressions draw on a budget of
// RequestCostBudget (every messageExpression is evaluated, the passing
// validations' too, on what the validations leave; running out there is
// an error of every validation), its audit annotations on another, each
// mutation on one of its own, and its match conditions on one of
// ConditionsCostBudget, as each ValidatingAdmissionPolicy and
// MutatingAdmissionPolicy binding does in the API server; a variable is
// evaluated, and charged, anew in each of these; each expression is also
// stopped at ExpressionCostLimit.
// An expression past a budget or limit is an error of its policy, handled
// by the policy's failure policy, so an expensive policy fails, it does
// not hang the request or spend the others' budgets. Cost is not time, though: cel-go's cost tracking is
// itself quadratic in the length of a list a comprehension walks (a list
// of 8,000 items costs 40,000 and takes about 0.2 s), as in the API
// server. Pass Mutate and Validate a context with the webhook call's
// deadline: CEL checks it every celconfig.CheckFrequency (100) iterations.
//
// Every expression runs as the API server runs it, with its cost tracker
// (program.go says why there is no untracked path). What is shared across
// a request's policies is only what is provably the same for each: the
// activation, built once, and the objects, converted to CEL values once
// (eval.go; TestEvaluateAsTheAPIServer and TestExpressionsAsTheAPIServer
// compare results, errors and the budget left with plugincel's).
//
// # Registries and readiness
//
// Controllers put compiled policies into a MutationRegistry or
// ValidationRegistry (Set; a broken one for a policy that failed to
// compile, served for its failure policy and counted as failed), and
// PolicyExceptions into an ExceptionRegistry, which publish immutable
// snapshots to the
// engine through an atomic.Pointer once MarkReady is called. Until then
// every result is NotReady and its Err is ErrNotReady: the handler fails
// the webhook call, so the webhook configuration's failurePolicy applies.
package admission
