package admission

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	segmentjson "github.com/segmentio/encoding/json"
	"gomodules.xyz/jsonpatch/v2"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// ErrNotReady is the error of every request before the first full sync.
// The handler must fail the webhook call with it (an HTTP error, not a
// review with allowed: false, which the API server takes as a rejection)
// so that the webhook configuration's failurePolicy decides.
var ErrNotReady = errors.New("admission policies are still loading")

// PolicyError is a policy that could not be evaluated or applied: a match
// condition or validation failed to evaluate, the CEL cost budget ran
// out, the namespace is not known yet, a patch did not apply.
type PolicyError struct {
	// Kind is KindMutationPolicy or KindValidationPolicy.
	Kind string
	// Policy is the policy's name; empty for an error of the request as a
	// whole (computing the response patch).
	Policy string
	// Action is the ValidationPolicy's action; empty for a MutationPolicy.
	Action admissionv1alpha1.Action
	// Index is the index in spec.validations of the validation that failed
	// to evaluate, or -1.
	Index int
	// FailurePolicy is the policy's: Fail (the error counts as a failed
	// validation, or rejects a mutated request) or Ignore (skipped).
	FailurePolicy admissionregistrationv1.FailurePolicyType
	Err           error
}

func (e PolicyError) Error() string {
	switch {
	case e.Policy == "":
		return e.Err.Error()
	case e.Index >= 0:
		return fmt.Sprintf("%s %q: spec.validations[%d]: %v", e.Kind, e.Policy, e.Index, e.Err)
	default:
		return fmt.Sprintf("%s %q: %v", e.Kind, e.Policy, e.Err)
	}
}

// Unwrap returns the underlying error.
func (e PolicyError) Unwrap() error { return e.Err }

// MutateResult is what Mutate did, as data.
type MutateResult struct {
	// NotReady is true before the first full sync; Err is then
	// ErrNotReady.
	NotReady bool
	// Patch is the RFC 6902 patch from the request's object to the
	// mutated one, computed by difference; nil when nothing changed.
	Patch []jsonpatch.Operation
	// Matched names the policies that matched, in the order they applied.
	Matched []string
	// Exempted are the policies that matched but a PolicyException
	// exempted the request from.
	Exempted []Exemption
	// Changed names the policies that changed the object, in order. Policies
	// that overwrite each other each change it on the way, so Changed may
	// be non-empty when Patch is nil.
	Changed []string
	// Errors lists the policies that could not be evaluated or applied;
	// each is rolled back, and the others still apply. Each is handled by
	// its policy's failure policy: Rejection for Fail, WarningMessages for
	// Ignore.
	Errors []PolicyError
	// annotations are the values of the applied policies' audit
	// annotations, by key (NAME.KEY), as of the last pass.
	annotations annotationValues
}

// AuditAnnotations are the applied policies' audit annotations, to return
// with the answer; nil when there are none.
func (r *MutateResult) AuditAnnotations() map[string]string { return r.annotations.strings() }

// Err is ErrNotReady before the first full sync, else an error of the
// request as a whole (computing the patch), else nil. The handler fails
// the call with it (and sends no patch), so that the webhook
// configuration's failurePolicy decides. A policy's own errors are not in
// it: they are handled by the policy's failure policy.
func (r *MutateResult) Err() error {
	if r.NotReady {
		return ErrNotReady
	}
	return aggregate(r.Errors, func(e PolicyError) bool { return e.Policy == "" })
}

// Rejection is why the request is rejected: the errors of policies whose
// failure policy is Fail, each naming its policy; "" when there are none.
func (r *MutateResult) Rejection() string {
	var parts []string
	for _, e := range r.Errors {
		if e.Policy != "" && e.FailurePolicy != admissionregistrationv1.Ignore {
			parts = append(parts, fmt.Sprintf("%s %q could not be applied (failurePolicy Fail): %v", e.Kind, e.Policy, e.Err))
		}
	}
	return strings.Join(parts, "; ")
}

// WarningMessages are the warnings to return with the answer: one per
// policy skipped under failurePolicy Ignore.
func (r *MutateResult) WarningMessages() []string {
	var out []string
	for _, e := range r.Errors {
		if e.Policy != "" && e.FailurePolicy == admissionregistrationv1.Ignore {
			out = append(out, fmt.Sprintf("%s %q was skipped (failurePolicy Ignore): %v", e.Kind, e.Policy, e.Err))
		}
	}
	return out
}

// PatchJSON encodes Patch, for a response's patch field, as
// jsonpatch.Operation's MarshalJSON encodes each operation; nil when there
// is no patch. It is one pass: through that method, encoding/json would
// encode each operation on its own, then check and compact what it
// returned. It is segmentio/encoding's drop-in encoding/json, which
// writes the same bytes (FuzzPatchJSONIsEncodingJSONs) from an encoder
// compiled per type, in half the time for a small patch.
func (r *MutateResult) PatchJSON() ([]byte, error) {
	if len(r.Patch) == 0 {
		return nil, nil
	}
	ops := make([]patchOperation, len(r.Patch))
	for i, op := range r.Patch {
		ops[i] = patchOperation{Operation: op.Operation, Path: op.Path, Value: op.Value}
		if op.Value == nil && (op.Operation == "add" || op.Operation == "replace") {
			ops[i].Value = jsonNull // the method's explicit null
		}
	}
	return segmentjson.Marshal(ops)
}

// patchOperation is jsonpatch.Operation without its MarshalJSON.
type patchOperation struct {
	Operation string `json:"op"`
	Path      string `json:"path"`
	Value     any    `json:"value,omitempty"`
}

var jsonNull = json.RawMessage("null")

// addError records a policy's error and reports whether it rejects the
// request (the policy's failure policy is Fail).
func (r *MutateResult) addError(p *CompiledMutation, err error) bool {
	r.Errors = append(r.Errors, PolicyError{Kind: KindMutationPolicy, Policy: p.Name, Index: -1, FailurePolicy: p.FailurePolicy, Err: err})
	return p.FailurePolicy != admissionregistrationv1.Ignore
}

// Violation is one validation that failed, or a policy that could not be
// evaluated, under a Warn or Audit policy.
type Violation struct {
	// Policy is the ValidationPolicy's name.
	Policy string
	// Index is the validation's index in spec.validations; -1 when the
	// policy as a whole could not be evaluated.
	Index int
	// Message is the validation's message (see the package doc), or the
	// evaluation error when Error is set.
	Message string
	// Error is true when the validation could not be evaluated.
	Error bool
}

// Audit annotations. The API server prefixes each key of a webhook's
// audit annotations with the webhook's name and "/", and drops a key that
// does not then make a qualified name, so a key has no "/" and at most 63
// characters: one fixed key, rather than one per policy (whose names may be
// 253 characters long).
const (
	// AuditKeyValidationFailure holds every failure of Audit policies as a
	// JSON list of {"policy", "expressionIndex", "message"}. Through the
	// webhook "validate.example.io" it is recorded as
	// "validate.example.io/validation_failure", the counterpart of the
	// API server's own "validation.policy.admission.k8s.io/validation_failure".
	AuditKeyValidationFailure = "validation_failure"

	// maxAuditFailures and maxAuditValueBytes cap the annotation as the
	// API server caps its own (50 failures, 10 KiB), so that a request
	// failing many policies cannot bloat the audit log. Failures past them
	// are left out, whole, so the value stays valid JSON.
	maxAuditFailures   = 50
	maxAuditValueBytes = 10 * 1024
)

// auditFailure is one entry of the AuditKeyValidationFailure annotation.
type auditFailure struct {
	Policy          string `json:"policy"`
	ExpressionIndex int    `json:"expressionIndex"`
	Message         string `json:"message"`
}

// matched records that policy matched, once.
func (r *MutateResult) matched(policy string) {
	if !slices.Contains(r.Matched, policy) {
		r.Matched = append(r.Matched, policy)
	}
}

// ValidateResult is what Validate found, as data. Every matching policy
// and every validation in it is evaluated.
type ValidateResult struct {
	// NotReady is true before the first full sync; Err is then
	// ErrNotReady.
	NotReady bool
	// Matched names the policies that matched, in name order.
	Matched []string
	// Exempted are the policies that matched but a PolicyException
	// exempted the request from.
	Exempted []Exemption
	// Denials are the failing validations of Deny policies, and the Deny
	// policies that could not be evaluated under failurePolicy Fail: the
	// request is denied when there is any.
	Denials []Violation
	// Warnings are the failing validations of Warn policies, and the Warn
	// policies that could not be evaluated under failurePolicy Fail: the
	// request is admitted with them as warnings.
	Warnings []Violation
	// Audits are the failing validations of Audit policies, and the Audit
	// policies that could not be evaluated under failurePolicy Fail: the
	// request is admitted and they are recorded as an audit annotation.
	Audits []Violation
	// Errors lists every policy that could not be evaluated, whatever its
	// action and failure policy (for the decision log and metrics).
	Errors []PolicyError
	// annotations are the values of the matching policies' audit
	// annotations, by key (NAME.KEY).
	annotations annotationValues
}

// Err is ErrNotReady before the first full sync, else nil: the handler
// fails the call with it, so that the webhook configuration's
// failurePolicy decides. A policy's errors are handled by its own failure
// policy, as the API server handles a ValidatingAdmissionPolicy's: under
// Fail as failed validations of its action (Denials, Warnings, Audits),
// under Ignore not at all.
func (r *ValidateResult) Err() error {
	if r.NotReady {
		return ErrNotReady
	}
	return nil
}

// Failed is the error of the first policy that could not be evaluated,
// whatever its failure policy, or nil: for tests and logs.
func (r *ValidateResult) Failed() error {
	return aggregate(r.Errors, func(PolicyError) bool { return true })
}

// Allowed reports whether no Deny policy failed. Check Err first.
func (r *ValidateResult) Allowed() bool { return len(r.Denials) == 0 }

// DenyMessage is the message of a denial: every failing validation of
// every Deny policy.
func (r *ValidateResult) DenyMessage() string {
	parts := make([]string, len(r.Denials))
	for i, v := range r.Denials {
		parts[i] = fmt.Sprintf("%s %q denied request: %s", KindValidationPolicy, v.Policy, v.Message)
	}
	return strings.Join(parts, "; ")
}

// WarningMessages are the warnings to return with the answer, one per
// Warnings entry.
func (r *ValidateResult) WarningMessages() []string {
	if len(r.Warnings) == 0 {
		return nil
	}
	out := make([]string, len(r.Warnings))
	for i, v := range r.Warnings {
		out[i] = fmt.Sprintf("Validation failed for %s %q: %s", KindValidationPolicy, v.Policy, v.Message)
	}
	return out
}

// AuditAnnotations are the audit annotations to return with the answer:
// the policies' own, and AuditKeyValidationFailure with the
// Audits; nil when there are none. A policy's keys have a "." and the
// fixed one has none, so they cannot collide.
func (r *ValidateResult) AuditAnnotations() map[string]string {
	failures := r.auditFailures()
	out := r.annotations.strings()
	if failures == "" {
		return out
	}
	if out == nil {
		out = make(map[string]string, 1)
	}
	out[AuditKeyValidationFailure] = failures
	return out
}

// auditFailures is the value of AuditKeyValidationFailure, "" when there
// are no Audits.
func (r *ValidateResult) auditFailures() string {
	if len(r.Audits) == 0 {
		return ""
	}
	n := min(len(r.Audits), maxAuditFailures)
	failures := make([]auditFailure, n)
	for i := range failures {
		v := r.Audits[i]
		failures[i] = auditFailure{Policy: v.Policy, ExpressionIndex: v.Index, Message: v.Message}
	}
	for ; n > 0; n-- {
		b, err := json.Marshal(failures[:n])
		if err == nil && len(b) <= maxAuditValueBytes {
			return string(b)
		}
	}
	return ""
}

func (r *ValidateResult) addFailure(p *CompiledValidation, index int, msg string) {
	v := Violation{Policy: p.Name, Index: index, Message: msg}
	switch p.Action {
	case admissionv1alpha1.ActionWarn:
		r.Warnings = append(r.Warnings, v)
	case admissionv1alpha1.ActionAudit:
		r.Audits = append(r.Audits, v)
	default:
		r.Denials = append(r.Denials, v)
	}
}

func (r *ValidateResult) addError(p *CompiledValidation, index int, err error) {
	r.Errors = append(r.Errors, PolicyError{Kind: KindValidationPolicy, Policy: p.Name, Action: p.Action, Index: index, FailurePolicy: p.FailurePolicy, Err: err})
	if p.FailurePolicy == admissionregistrationv1.Ignore {
		return
	}
	msg := "could not be evaluated (failurePolicy Fail): " + err.Error()
	if index >= 0 {
		msg = fmt.Sprintf("spec.validations[%d] could not be evaluated (failurePolicy Fail): %v", index, err)
	}
	v := Violation{Policy: p.Name, Index: index, Message: msg, Error: true}
	switch p.Action {
	case admissionv1alpha1.ActionWarn:
		r.Warnings = append(r.Warnings, v)
	case admissionv1alpha1.ActionAudit:
		r.Audits = append(r.Audits, v)
	default:
		r.Denials = append(r.Denials, v)
	}
}

func aggregate(errs []PolicyError, keep func(PolicyError) bool) error {
	var out []error
	for _, e := range errs {
		if keep(e) {
			out = append(out, e)
		}
	}
	return utilerrors.NewAggregate(out)
}
