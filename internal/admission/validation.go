package admission

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	celtypes "github.com/google/cel-go/common/types"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	apiservercel "k8s.io/apiserver/pkg/cel"
	"k8s.io/apiserver/pkg/cel/environment"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// CompiledValidation is one compiled ValidationPolicy. It is immutable
// once compiled, so snapshots share it and a controller may cache it by
// UID and resourceVersion.
type CompiledValidation struct {
	// Name of the ValidationPolicy; results name it.
	Name string
	// UID, ResourceVersion and Generation identify the object the policy
	// was compiled from, for caches and status.
	UID             types.UID
	ResourceVersion string
	Generation      int64
	// Action is what a failing validation does: Deny, Warn or Audit
	// (spec.action, Deny when empty).
	Action admissionv1alpha1.Action
	// FailurePolicy is what an error does (spec.failurePolicy, Fail when
	// unset): Fail takes it as a failed validation, Ignore skips it.
	FailurePolicy admissionregistrationv1.FailurePolicyType

	// err is the configuration error of a policy that failed to compile;
	// such a policy keeps what compiled of its match, and its failure
	// policy applies to every request it matches.
	err         error
	match       *matcher
	params      *params // nil without a paramKind
	validations []*program
	checks      []check
	annotations []auditAnnotation
	// native is its native form, nil unless it compiled without error.
	native *nativeValidation
	// exprErr is ExpressionErr.
	exprErr error
}

// auditAnnotation is one compiled spec.auditAnnotations entry.
type auditAnnotation struct {
	key   string // NAME.KEY, what the webhook returns
	value *program
}

// check is what a failing validation reports.
type check struct {
	expression  string     // trimmed, for the default message
	message     string     // trimmed; "" when unset
	messageExpr []*program // one, or nil when unset
}

// Matches reports whether the policy applies to r; an error means it could
// not tell.
func (p *CompiledValidation) Matches(ctx context.Context, r *Request) (bool, error) {
	return p.match.matches(ctx, r)
}

// Rules returns the policy's resource rules for a webhook configuration.
func (p *CompiledValidation) Rules() []admissionregistrationv1.RuleWithOperations {
	return p.match.rulesCopy()
}

// Err is the configuration error of a policy that failed to compile, nil
// for one that compiled.
func (p *CompiledValidation) Err() error { return p.err }

// ExpressionErr is the errors, each naming its field, of the expressions
// that do not compile in a policy that otherwise did: the webhook serves
// it (each such expression an error of its validation whenever it is
// evaluated), and there is no native form of it. nil when all compiled.
func (p *CompiledValidation) ExpressionErr() error { return p.exprErr }

// ValidateValidationPolicy reports every error CompileValidationPolicy
// would, for the validating webhook that checks ValidationPolicies being
// written: CEL is compiled as new expressions (environment.NewExpressions),
// which may not use what only newer API servers understand. Field paths
// are rooted at "spec", so kubectl shows the field at fault.
func ValidateValidationPolicy(c *Compiler, p *admissionv1alpha1.ValidationPolicy) field.ErrorList {
	_, errs := compileValidationPolicy(c, p, environment.NewExpressions)
	return errs
}

// CompileValidationPolicy compiles a stored ValidationPolicy (its CEL as
// stored expressions, environment.StoredExpressions). A policy with any
// error is returned broken (Err holds its errors, each naming its field
// under "spec"), with what compiled of its match and its failure policy:
// the engine applies that failure policy to every request it matches, as
// the API server does for a ValidatingAdmissionPolicy that does not
// compile, rather than drop it. It is nil only for a nil policy.
func CompileValidationPolicy(c *Compiler, p *admissionv1alpha1.ValidationPolicy) (*CompiledValidation, field.ErrorList) {
	return compileValidationPolicy(c, p, environment.StoredExpressions)
}

func compileValidationPolicy(c *Compiler, p *admissionv1alpha1.ValidationPolicy, mode environment.Type) (*CompiledValidation, field.ErrorList) {
	specPath := field.NewPath("spec")
	if p == nil {
		return nil, field.ErrorList{field.Required(specPath, "no ValidationPolicy to compile")}
	}
	out := &CompiledValidation{
		Name:            p.Name,
		UID:             p.UID,
		ResourceVersion: p.ResourceVersion,
		Generation:      p.Generation,
		Action:          p.Spec.Action,
	}
	b := c.compileBase(specPath, mode, false, &p.Spec.Match, p.Spec.ParamKind, p.Spec.ParamRef, p.Spec.Variables, p.Spec.FailurePolicy)
	out.params, out.match, out.FailurePolicy = b.params, b.match, b.failurePolicy
	sc, errs, exprErrs := b.scope, b.errs, b.exprErrs

	switch p.Spec.Action {
	case "":
		out.Action = admissionv1alpha1.ActionDeny
	case admissionv1alpha1.ActionDeny, admissionv1alpha1.ActionWarn, admissionv1alpha1.ActionAudit:
	default:
		errs = append(errs, field.NotSupported(specPath.Child("action"), p.Spec.Action, []admissionv1alpha1.Action{
			admissionv1alpha1.ActionDeny, admissionv1alpha1.ActionWarn, admissionv1alpha1.ActionAudit}))
	}

	vp := specPath.Child("validations")
	if len(p.Spec.Validations) == 0 && len(p.Spec.AuditAnnotations) == 0 {
		errs = append(errs, field.Required(vp, "a ValidationPolicy has at least one validation or audit annotation"))
	}
	// An expression that does not compile is an error of its validation
	// only, as in the API server: the policy's other validations still
	// run, and that one is an error whenever it is evaluated, handled by
	// the failure policy. A messageExpression that does not compile falls
	// back to the message, as there.
	results := make([]*program, 0, len(p.Spec.Validations))
	for i := range p.Spec.Validations {
		v := &p.Spec.Validations[i]
		ip := vp.Index(i)
		res, ferr := sc.compile(ip.Child("expression"), v.Expression, celVariables, cel.BoolType)
		if ferr != nil {
			exprErrs = append(exprErrs, ferr)
		}
		results = append(results, res)
		ck := check{
			expression: strings.TrimSpace(v.Expression),
			message:    strings.TrimSpace(v.Message),
		}
		// The API server's rules for a ValidatingAdmissionPolicy's
		// messages: a message is one line, and must be given when the
		// default one ("failed expression: ...") would span several.
		switch {
		case v.Message != "" && ck.message == "":
			errs = append(errs, field.Invalid(ip.Child("message"), v.Message, "message must be non-empty if specified"))
		case strings.ContainsAny(ck.message, "\n"):
			errs = append(errs, field.Invalid(ip.Child("message"), v.Message, "message must not contain line breaks"))
		case ck.message == "" && strings.ContainsAny(ck.expression, "\n"):
			errs = append(errs, field.Required(ip.Child("message"), "message must be specified if expression contains line breaks"))
		}
		if v.MessageExpression != "" {
			mres, ferr := sc.compile(ip.Child("messageExpression"), v.MessageExpression, celVariables, cel.StringType)
			if ferr != nil {
				exprErrs = append(exprErrs, ferr)
			} else {
				ck.messageExpr = []*program{mres}
			}
		}
		out.checks = append(out.checks, ck)
	}
	annotations, aerrs, aexprErrs := compileAuditAnnotations(sc, p.Name, p.Spec.AuditAnnotations, specPath.Child("auditAnnotations"))
	errs, exprErrs = append(errs, aerrs...), append(exprErrs, aexprErrs...)
	if len(errs) > 0 {
		if out.Action != admissionv1alpha1.ActionWarn && out.Action != admissionv1alpha1.ActionAudit {
			out.Action = admissionv1alpha1.ActionDeny
		}
		all := append(errs, exprErrs...)
		out.err, out.checks = all.ToAggregate(), nil
		return out, all
	}
	out.validations = results
	out.annotations = annotations
	if len(exprErrs) == 0 {
		out.native = newNativeValidation(b.nativeBase(p.Name, p.UID, &p.Spec.Match, p.Spec.ParamKind, p.Spec.ParamRef, p.Spec.Variables), &p.Spec)
	} else {
		out.exprErr = exprErrs.ToAggregate()
	}
	return out, exprErrs
}

// maxAuditAnnotationValueBytes caps an audit annotation's value as the API
// server caps a ValidatingAdmissionPolicy's.
const maxAuditAnnotationValueBytes = 10 * 1024

// compileAuditAnnotations compiles spec.auditAnnotations (path) of policy
// name. Keys are checked as the API server checks a
// ValidatingAdmissionPolicy's, and for what the webhook can record: the
// API server records a webhook's annotation KEY as WEBHOOK/KEY, so the
// key NAME.KEY that the policy's annotation becomes must be a valid name
// of at most 63 characters. An expression that does not compile is an
// error of its annotation (exprErrs), which evaluating it reports.
func compileAuditAnnotations(sc *scope, name string, in []admissionregistrationv1.AuditAnnotation, path *field.Path) (out []auditAnnotation, errs, exprErrs field.ErrorList) {
	seen := make(map[string]bool, len(in))
	for i := range in {
		a, ip := &in[i], path.Index(i)
		kp := ip.Child("key")
		key := name + "." + a.Key
		switch {
		case a.Key == "":
			errs = append(errs, field.Required(kp, "an audit annotation has a key"))
		case seen[a.Key]:
			errs = append(errs, field.Duplicate(kp, a.Key))
		default:
			for _, msg := range validation.IsQualifiedName(a.Key) {
				errs = append(errs, field.Invalid(kp, a.Key, msg))
			}
			if strings.Contains(a.Key, "/") {
				errs = append(errs, field.Invalid(kp, a.Key, "a key has no \"/\""))
			} else if msgs := validation.IsQualifiedName(key); len(msgs) > 0 {
				errs = append(errs, field.Invalid(kp, a.Key, fmt.Sprintf("the policy's name, \".\" and the key make the annotation's name %q, which %s", key, strings.Join(msgs, "; "))))
			}
		}
		seen[a.Key] = true
		prog, ferr := sc.compile(ip.Child("valueExpression"), a.ValueExpression, celVariables, cel.StringType, cel.NullType)
		if ferr != nil {
			exprErrs = append(exprErrs, ferr)
		}
		out = append(out, auditAnnotation{key: key, value: prog})
	}
	return out, errs, exprErrs
}

// base is what both kinds of policy compile alike: parameters, the
// scope of their variables, the match and the failure policy. errs are
// the policy's errors, exprErrs those of expressions that do not compile.
type base struct {
	params        *params
	scope         *scope
	match         *matcher
	failurePolicy admissionregistrationv1.FailurePolicyType
	errs          field.ErrorList
	exprErrs      field.ErrorList
}

// nativeBase is the native form of the shared fields, for a policy that
// compiled without error.
func (b *base) nativeBase(name string, uid types.UID, match *admissionv1alpha1.Match, kind *admissionregistrationv1.ParamKind,
	ref *admissionregistrationv1.ParamRef, vars []admissionregistrationv1.Variable) *nativeBase {
	return newNativeBase(name, uid, match, b.match, b.scope, kind, ref, vars, b.failurePolicy)
}

// compileBase compiles the fields both kinds share, under specPath.
func (c *Compiler) compileBase(specPath *field.Path, mode environment.Type, mutating bool, match *admissionv1alpha1.Match,
	kind *admissionregistrationv1.ParamKind, ref *admissionregistrationv1.ParamRef,
	vars []admissionregistrationv1.Variable, fp *admissionregistrationv1.FailurePolicyType) base {
	var b base
	b.params, b.errs = compileParams(kind, ref, specPath)
	var verrs field.ErrorList
	b.scope, verrs, b.exprErrs = c.scope(vars, kind != nil, specPath.Child("variables"), mode)
	b.errs = append(b.errs, verrs...)
	var merrs field.ErrorList
	b.match, merrs = compileMatch(b.scope, match, specPath.Child("match"), mutating)
	b.errs = append(b.errs, merrs...)
	var ferr *field.Error
	if b.failurePolicy, ferr = failurePolicy(fp, specPath.Child("failurePolicy")); ferr != nil {
		b.errs = append(b.errs, ferr)
	}
	return b
}

// failurePolicy reads spec.failurePolicy: Fail when unset.
func failurePolicy(fp *admissionregistrationv1.FailurePolicyType, path *field.Path) (admissionregistrationv1.FailurePolicyType, *field.Error) {
	switch {
	case fp == nil || *fp == admissionregistrationv1.Fail:
		return admissionregistrationv1.Fail, nil
	case *fp == admissionregistrationv1.Ignore:
		return admissionregistrationv1.Ignore, nil
	}
	return admissionregistrationv1.Fail, field.NotSupported(path, *fp, []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Fail, admissionregistrationv1.Ignore})
}

// evaluate evaluates every validation of a policy that matched r and adds
// what fails, and what could not be evaluated, to res.
func (p *CompiledValidation) evaluate(ctx context.Context, r *Request, res *ValidateResult) {
	// The policy's own budget, as a binding's in the API server; its
	// messageExpressions spend what its validations leave.
	r.budgetFor(RequestCostBudget)
	// The request's scratch space: messages below does not use it.
	results, err := r.evaluate(ctx, p.validations, r.results[:0])
	r.results = results
	if err != nil {
		res.addError(p, -1, err)
		return
	}
	messages, msgErr := p.messages(ctx, r)
	for i := range results {
		switch {
		case results[i].Error != nil:
			res.addError(p, i, results[i].Error)
		case msgErr != nil:
			// As the API server: every validation, passing or not.
			res.addError(p, i, fmt.Errorf("failed messageExpression: %w", msgErr))
		case results[i].EvalResult != celtypes.True:
			res.addFailure(p, i, p.message(i, messages))
		}
	}
	p.annotate(ctx, r, res)
}

// annotate evaluates the policy's audit annotations into res.
func (p *CompiledValidation) annotate(ctx context.Context, r *Request, res *ValidateResult) {
	evaluateAnnotations(ctx, r, p.annotations, &res.annotations, func(err error) { res.addError(p, -1, err) })
}

// annotationValues are audit annotation values by key, each distinct
// value once, in the order found.
type annotationValues map[string][]string

// add records value under key.
func (a *annotationValues) add(key, value string) {
	if *a == nil {
		*a = annotationValues{}
	}
	if !slices.Contains((*a)[key], value) {
		(*a)[key] = append((*a)[key], value)
	}
}

// merge adds every value of b.
func (a *annotationValues) merge(b annotationValues) {
	for k, vs := range b {
		for _, v := range vs {
			a.add(k, v)
		}
	}
}

// strings joins the values of each key with ", ", as the API server joins
// a policy's values for several parameter objects; nil when there are
// none.
func (a annotationValues) strings() map[string]string {
	if len(a) == 0 {
		return nil
	}
	out := make(map[string]string, len(a))
	for k, vs := range a {
		out[k] = strings.Join(vs, ", ")
	}
	return out
}

// evaluateAnnotations evaluates audit annotations as the API server
// evaluates a ValidatingAdmissionPolicy's, with a budget of their own: a
// string value is recorded in into, trimmed and cut at 10 KiB; an empty
// string or null records nothing; an error goes to fail, an error of the
// policy, which its failure policy handles (with Fail, a
// ValidatingAdmissionPolicy denies).
func evaluateAnnotations(ctx context.Context, r *Request, annotations []auditAnnotation, into *annotationValues, fail func(error)) {
	if len(annotations) == 0 {
		return
	}
	r.budgetFor(RequestCostBudget)
	for i := range annotations {
		a := &annotations[i]
		var space [1]plugincel.EvaluationResult
		results, err := r.evaluate(ctx, []*program{a.value}, space[:0])
		if err == nil && results[0].Error != nil {
			err = results[0].Error
		}
		if err != nil {
			fail(fmt.Errorf("auditAnnotations[%d]: %w", i, err))
			continue
		}
		v, ok := results[0].EvalResult.Value().(string)
		if !ok {
			continue // null
		}
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if len(v) > maxAuditAnnotationValueBytes {
			v = v[:maxAuditAnnotationValueBytes]
		}
		into.add(a.key, v)
	}
}

// messages evaluates the messageExpression of every validation that has
// one, passing or failing, as the API server does: in order, in a
// composition of their own (variables are evaluated, and charged, anew),
// on what the validations left of the budget. The results are by
// validation, nil without messageExpressions. Running out of budget, or an
// internal error, is the error; an expression's own error is in its
// result, and its validation falls back to its message.
func (p *CompiledValidation) messages(ctx context.Context, r *Request) ([]plugincel.EvaluationResult, error) {
	var out []plugincel.EvaluationResult
	for i := range p.checks {
		ck := &p.checks[i]
		if ck.messageExpr == nil {
			continue
		}
		if out == nil {
			out = make([]plugincel.EvaluationResult, len(p.checks))
			r.newComposition()
		}
		results, err := r.evaluate(ctx, ck.messageExpr, out[i:i])
		switch {
		case errors.Is(err, apiservercel.ErrOutOfBudget) || errors.Is(err, apiservercel.ErrInternal):
			return nil, err
		case err != nil:
			return nil, nil // as the API server: every message falls back
		}
		out[i] = results[0]
	}
	return out, nil
}

// message is the message of failing validation i, chosen as the API
// server chooses it: its messageExpression's result (messages[i]) when it
// is a non-empty, single-line string of at most maxMessageBytes, else
// message, else "failed expression: EXPRESSION".
func (p *CompiledValidation) message(i int, messages []plugincel.EvaluationResult) string {
	ck := &p.checks[i]
	if i < len(messages) {
		if m := &messages[i]; m.Error == nil && m.EvalResult != nil {
			if s, ok := m.EvalResult.Value().(string); ok {
				s = strings.TrimSpace(s)
				if s != "" && len(s) <= maxMessageBytes && !strings.Contains(s, "\n") {
					return s
				}
			}
		}
	}
	if ck.message != "" {
		return ck.message
	}
	return fmt.Sprintf("failed expression: %s", ck.expression)
}
