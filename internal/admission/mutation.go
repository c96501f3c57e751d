package admission

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
	"k8s.io/apiserver/pkg/cel/environment"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// Kinds, as results and errors name them.
const (
	KindMutationPolicy   = "MutationPolicy"
	KindValidationPolicy = "ValidationPolicy"
)

// CompiledMutation is one compiled MutationPolicy. It is immutable once
// compiled, so snapshots share it and a controller may cache it by UID and
// resourceVersion.
type CompiledMutation struct {
	// Name of the MutationPolicy; results name it.
	Name string
	// UID, ResourceVersion and Generation identify the object the policy
	// was compiled from, for caches and status.
	UID             types.UID
	ResourceVersion string
	Generation      int64
	// Order is spec.order: policies apply in ascending order, then by name.
	Order int32
	// FailurePolicy is what an error does (spec.failurePolicy, Fail when
	// unset): Fail rejects the request, Ignore skips the policy.
	FailurePolicy admissionregistrationv1.FailurePolicyType

	// err is the configuration error of a policy that failed to compile;
	// such a policy keeps what compiled of its match, and its failure
	// policy applies to every request it matches.
	err         error
	annotations []auditAnnotation
	match       *matcher
	params      *params // nil without a paramKind
	mutations   []mutation
	// metadataOnly says that the mutations only set labels and
	// annotations.
	metadataOnly bool
	// writesValues says that a mutation writes values as given (a JSON
	// or merge patch), which the kind's schema may refuse, so that
	// Mutate checks the object after the policy (schemacheck.go).
	// setLabels and setAnnotations write strings into maps of strings,
	// and an apply configuration is merged under the schema, refused by
	// its patcher if it does not fit.
	writesValues bool
	// native is its native form, nil unless it compiled without error.
	native *nativeMutationForm
}

// Matches reports whether the policy applies to r; an error means it could
// not tell (a condition failed to evaluate, the namespace is unknown). It
// does not check the operation beyond the policy's rules: Mutate applies
// policies to CREATE and UPDATE requests only.
func (p *CompiledMutation) Matches(ctx context.Context, r *Request) (bool, error) {
	return p.match.matches(ctx, r)
}

// Rules returns the policy's resource rules for a webhook configuration.
// "*" operations are narrowed to CREATE and UPDATE, the only ones a
// MutationPolicy acts on.
func (p *CompiledMutation) Rules() []admissionregistrationv1.RuleWithOperations {
	return p.match.rulesCopy()
}

// Err is the configuration error of a policy that failed to compile, nil
// for one that compiled.
func (p *CompiledMutation) Err() error { return p.err }

// mutationKind says which field of a Mutation is set.
type mutationKind uint8

const (
	mutateLabels mutationKind = iota
	mutateAnnotations
	mutateJSONPatch
	mutateMergePatch
	// mutateJSONPatchExpression and mutateApplyConfiguration are CEL,
	// applied by the API server's own patchers.
	mutateJSONPatchExpression
	mutateApplyConfiguration
)

// mutation is one compiled spec.mutations entry.
type mutation struct {
	kind      mutationKind
	entries   []keyValue // labels or annotations, sorted by key
	overwrite bool
	patch     jsonpatch.Patch
	merge     map[string]any
	expr      *program // the CEL forms
}

// apply applies the mutation to the request's object, doc. A JSON patch
// whose test fails does nothing and is not an error.
func (m *mutation) apply(ctx context.Context, r *Request, doc map[string]any, log *undoLog) error {
	switch m.kind {
	case mutateLabels:
		return setMetadataStrings(doc, "labels", m.entries, m.overwrite, log)
	case mutateAnnotations:
		return setMetadataStrings(doc, "annotations", m.entries, m.overwrite, log)
	case mutateJSONPatch:
		return applyJSONPatch(doc, m.patch, log)
	case mutateMergePatch:
		applyMergePatch(doc, m.merge, log)
		return nil
	default:
		return r.applyCEL(ctx, m, doc, log)
	}
}

// decode decodes what of the request's object the policy's mutations
// write: only the labels and annotations when that is all they set.
func (p *CompiledMutation) decode(r *Request) error {
	if p.metadataOnly {
		return r.decodeMetadata()
	}
	return r.decode()
}

// apply applies every mutation of the policy to the request's object, in
// order, each seeing what the ones before it did. On error the object is
// rolled back to what it was before the policy.
func (p *CompiledMutation) apply(ctx context.Context, r *Request, log *undoLog) error {
	mark := len(*log)
	doc := r.object.Object
	for i := range p.mutations {
		// Each mutation's own CEL budget, and its own composition of the
		// policy's variables, as each of a MutatingAdmissionPolicy's
		// mutations has in the API server.
		r.budgetFor(RequestCostBudget)
		before := len(*log)
		err := p.mutations[i].apply(ctx, r, doc, log)
		if len(*log) > before {
			r.objectChanged()
		}
		if err != nil {
			if len(*log) > mark {
				log.rollback(mark)
				r.objectChanged()
			}
			return fmt.Errorf("spec.mutations[%d]: %w", i, err)
		}
	}
	return nil
}

// ValidateMutationPolicy reports every error CompileMutationPolicy would,
// for the validating webhook that checks MutationPolicies being written:
// CEL is compiled as new expressions (environment.NewExpressions), which
// may not use what only newer API servers understand. Field paths are
// rooted at "spec", so kubectl shows the field at fault.
func ValidateMutationPolicy(c *Compiler, p *admissionv1alpha1.MutationPolicy) field.ErrorList {
	_, errs := compileMutationPolicy(c, p, environment.NewExpressions)
	return errs
}

// CompileMutationPolicy compiles a stored MutationPolicy (its CEL as
// stored expressions, environment.StoredExpressions, which tolerates
// what a newer API server's policy may use). A policy with any error is
// returned broken (Err holds its errors, each naming its field under
// "spec"), with what compiled of its match and its failure policy, which
// the engine applies to every request it matches. It is nil only for a
// nil policy.
func CompileMutationPolicy(c *Compiler, p *admissionv1alpha1.MutationPolicy) (*CompiledMutation, field.ErrorList) {
	return compileMutationPolicy(c, p, environment.StoredExpressions)
}

func compileMutationPolicy(c *Compiler, p *admissionv1alpha1.MutationPolicy, mode environment.Type) (*CompiledMutation, field.ErrorList) {
	specPath := field.NewPath("spec")
	if p == nil {
		return nil, field.ErrorList{field.Required(specPath, "no MutationPolicy to compile")}
	}
	out := &CompiledMutation{
		Name:            p.Name,
		UID:             p.UID,
		ResourceVersion: p.ResourceVersion,
		Generation:      p.Generation,
		Order:           p.Spec.Order,
	}
	b := c.compileBase(specPath, mode, true, &p.Spec.Match, p.Spec.ParamKind, p.Spec.ParamRef, p.Spec.Variables, p.Spec.FailurePolicy)
	out.params, out.match, out.FailurePolicy = b.params, b.match, b.failurePolicy
	sc, errs, exprErrs := b.scope, b.errs, b.exprErrs

	mp := specPath.Child("mutations")
	if len(p.Spec.Mutations) == 0 {
		errs = append(errs, field.Required(mp, "a MutationPolicy has at least one mutation"))
	}
	for i := range p.Spec.Mutations {
		mu, merrs := compileMutation(sc, &p.Spec.Mutations[i], mp.Index(i))
		errs = append(errs, merrs...)
		if len(merrs) == 0 {
			out.mutations = append(out.mutations, mu)
		}
	}
	annotations, aerrs, aexprErrs := compileAuditAnnotations(sc, p.Name, p.Spec.AuditAnnotations, specPath.Child("auditAnnotations"))
	errs, exprErrs = append(errs, aerrs...), append(exprErrs, aexprErrs...)
	out.annotations = annotations
	// A mutation is applied whole or not at all, so unlike a validation,
	// an expression that does not compile (a variable's included) makes
	// the whole policy broken: its failure policy applies.
	errs = append(errs, exprErrs...)
	if len(errs) > 0 {
		out.err, out.mutations = errs.ToAggregate(), nil
		return out, errs
	}
	out.metadataOnly = !slices.ContainsFunc(out.mutations, func(m mutation) bool {
		return m.kind != mutateLabels && m.kind != mutateAnnotations
	})
	out.writesValues = slices.ContainsFunc(out.mutations, func(m mutation) bool {
		return m.kind == mutateJSONPatch || m.kind == mutateMergePatch || m.kind == mutateJSONPatchExpression
	})
	out.native = newNativeMutation(b.nativeBase(p.Name, p.UID, &p.Spec.Match, p.Spec.ParamKind, p.Spec.ParamRef, p.Spec.Variables), &p.Spec, out.mutations)
	return out, nil
}

// mutationForms names a Mutation's fields, for errors.
const mutationForms = "setLabels, setAnnotations, jsonPatch, mergePatch or applyConfiguration"

func compileMutation(sc *scope, in *admissionv1alpha1.Mutation, path *field.Path) (mutation, field.ErrorList) {
	var set []string
	if in.SetLabels != nil {
		set = append(set, "setLabels")
	}
	if in.SetAnnotations != nil {
		set = append(set, "setAnnotations")
	}
	if in.JSONPatch != nil {
		set = append(set, "jsonPatch")
	}
	if in.MergePatch != nil {
		set = append(set, "mergePatch")
	}
	if in.ApplyConfiguration != nil {
		set = append(set, "applyConfiguration")
	}
	switch len(set) {
	case 0:
		return mutation{}, field.ErrorList{field.Required(path, "exactly one of "+mutationForms)}
	case 1:
	default:
		return mutation{}, field.ErrorList{field.Forbidden(path.Child(set[1]),
			"exactly one of "+mutationForms+" may be set, and "+set[0]+" is")}
	}

	var (
		out  mutation
		errs field.ErrorList
	)
	if in.Overwrite && set[0] != "setLabels" && set[0] != "setAnnotations" {
		errs = append(errs, field.Forbidden(path.Child("overwrite"), "overwrite applies to setLabels and setAnnotations only"))
	}
	switch set[0] {
	case "setLabels":
		out.kind = mutateLabels
		fp := path.Child("setLabels")
		if len(in.SetLabels) == 0 {
			errs = append(errs, field.Required(fp, "at least one label"))
		}
		errs = append(errs, metav1validation.ValidateLabels(in.SetLabels, fp)...)
		out.entries, out.overwrite = sortedEntries(in.SetLabels), in.Overwrite
	case "setAnnotations":
		out.kind = mutateAnnotations
		fp := path.Child("setAnnotations")
		if len(in.SetAnnotations) == 0 {
			errs = append(errs, field.Required(fp, "at least one annotation"))
		}
		errs = append(errs, apimachineryvalidation.ValidateAnnotations(in.SetAnnotations, fp)...)
		out.entries, out.overwrite = sortedEntries(in.SetAnnotations), in.Overwrite
	case "jsonPatch":
		fp := path.Child("jsonPatch")
		switch jp := in.JSONPatch; {
		case jp.Invalid != "":
			errs = append(errs, field.Invalid(fp, jp.Invalid, "a JSON patch is an RFC 6902 patch, as a JSON string or a list of operations, or {expression: CEL}"))
		case jp.Expression != "" && jp.Patch != "":
			errs = append(errs, field.Invalid(fp, jp, "either a JSON patch as a string or {expression}, not both"))
		case jp.Expression != "":
			out.kind = mutateJSONPatchExpression
			var ferr *field.Error
			if out.expr, ferr = sc.compile(fp.Child("expression"), jp.Expression, mutationVariables, (&patch.JSONPatchCondition{}).ReturnTypes()...); ferr != nil {
				errs = append(errs, ferr)
			}
		default:
			out.kind = mutateJSONPatch
			var msgs []string
			out.patch, msgs = compileJSONPatch(jp.Patch)
			for _, msg := range msgs {
				errs = append(errs, field.Invalid(fp, jp.Patch, msg))
			}
		}
	case "mergePatch":
		out.kind = mutateMergePatch
		var msg string
		out.merge, msg = compileMergePatch(in.MergePatch.Raw)
		if msg != "" {
			errs = append(errs, field.Invalid(path.Child("mergePatch"), string(in.MergePatch.Raw), msg))
		}
	case "applyConfiguration":
		out.kind = mutateApplyConfiguration
		var ferr *field.Error
		if out.expr, ferr = sc.compile(path.Child("applyConfiguration", "expression"), in.ApplyConfiguration.Expression, mutationVariables, (&patch.ApplyConfigurationCondition{}).ReturnTypes()...); ferr != nil {
			errs = append(errs, ferr)
		}
	}
	return out, errs
}

func sortedEntries(m map[string]string) []keyValue {
	out := make([]keyValue, 0, len(m))
	for k, v := range m {
		out = append(out, keyValue{key: k, value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// sortMutations orders policies as they apply: by spec.order, then name.
func sortMutations(ps []*CompiledMutation) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Order != ps[j].Order {
			return ps[i].Order < ps[j].Order
		}
		return strings.Compare(ps[i].Name, ps[j].Name) < 0
	})
}
