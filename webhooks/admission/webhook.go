package admission

import (
	"context"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	engine "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/decision"
)

// Paths the webhook configurations point at.
const (
	MutatePath   = "/mutate"
	ValidatePath = "/validate"
)

// Mutator serves /mutate from a MutationEngine.
type Mutator struct {
	Engine   *engine.MutationEngine
	Recorder *decision.Recorder
}

// Validator serves /validate from a ValidationEngine.
type Validator struct {
	Engine   *engine.ValidationEngine
	Recorder *decision.Recorder
}

func (m *Mutator) ServeHTTP(rw http.ResponseWriter, r *http.Request)   { serve(rw, r, m) }
func (v *Validator) ServeHTTP(rw http.ResponseWriter, r *http.Request) { serve(rw, r, v) }

func (m *Mutator) record(e decision.Entry) {
	e.Phase = decision.PhaseMutate
	m.Recorder.Record(e)
}

func (v *Validator) record(e decision.Entry) {
	e.Phase = decision.PhaseValidate
	v.Recorder.Record(e)
}

func entry(phase string, req *admissionv1.AdmissionRequest, start time.Time) decision.Entry {
	res := req.Resource.Resource
	if req.SubResource != "" {
		res += "/" + req.SubResource
	}
	if req.Resource.Group != "" {
		res += "." + req.Resource.Group
	}
	if req.Name != "" {
		res += "/" + req.Name
	}
	return decision.Entry{
		Phase: phase, User: req.UserInfo.Username, Verb: string(req.Operation),
		Resource: res, Namespace: req.Namespace, UID: string(req.UID), Latency: time.Since(start),
	}
}

// redacted is e, Redacted for a review of a Secret: what its policies'
// message expressions and errors say may quote its data (as the audit
// leaves it out of PolicyReports), and the decision log is no place for
// it. The answer to the API server, for the author, keeps the message.
func redacted(e decision.Entry, req *admissionv1.AdmissionRequest) decision.Entry {
	for _, k := range []*metav1.GroupVersionKind{&req.Kind, req.RequestKind} {
		if k != nil && k.Group == "" && k.Kind == "Secret" {
			e.Redact()
			break
		}
	}
	return e
}

func (m *Mutator) review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	start := time.Now()
	res := m.Engine.Mutate(ctx, req)
	e := entry(decision.PhaseMutate, req, start)
	e.Policy = policies(engine.KindMutationPolicy, res.Changed)
	e.PolicyErrors = policyErrors(res.Errors)
	e.Exemptions = exemptions(res.Exempted)
	if err := res.Err(); err != nil {
		e.Result, e.Reason = "error", err.Error()
		m.Recorder.Record(redacted(e, req))
		return nil, err
	}
	if msg := res.Rejection(); msg != "" {
		// A policy under failurePolicy Fail could not be applied: the
		// request is rejected naming it, whatever the others did.
		e.Result, e.Reason = "denied", msg
		m.Recorder.Record(redacted(e, req))
		return &admissionv1.AdmissionResponse{
			Allowed:  false,
			Warnings: res.WarningMessages(),
			// As the API server rejects a MutatingAdmissionPolicy that
			// could not be applied: 403 with reason Invalid.
			Result: &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonInvalid, Message: msg},
		}, nil
	}
	patch, err := res.PatchJSON()
	if err != nil {
		e.Result, e.Reason = "error", err.Error()
		m.Recorder.Record(redacted(e, req))
		return nil, err
	}
	resp := &admissionv1.AdmissionResponse{Allowed: true, Warnings: res.WarningMessages(), AuditAnnotations: res.AuditAnnotations()}
	e.Result = "unchanged"
	if patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
		e.Result = "patched"
	}
	m.Recorder.Record(redacted(e, req))
	return resp, nil
}

func (v *Validator) review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, error) {
	start := time.Now()
	res := v.Engine.Validate(ctx, req)
	e := entry(decision.PhaseValidate, req, start)
	e.PolicyErrors = policyErrors(res.Errors)
	e.Exemptions = exemptions(res.Exempted)
	if err := res.Err(); err != nil {
		e.Result, e.Reason = "error", err.Error()
		v.Recorder.Record(redacted(e, req))
		return nil, err
	}
	resp := &admissionv1.AdmissionResponse{
		Allowed:          res.Allowed(),
		Warnings:         res.WarningMessages(),
		AuditAnnotations: res.AuditAnnotations(),
	}
	e.Result = "allowed"
	switch {
	case !resp.Allowed:
		e.Result, e.Reason = "denied", res.DenyMessage()
		resp.Result = denial(&res)
		e.Policy = violators(res.Denials)
	case len(res.Warnings) > 0:
		e.Result = "warned"
		e.Policy = violators(res.Warnings)
	}
	for _, a := range res.Audits {
		e.Audit = append(e.Audit, decision.Violation{Policy: engine.KindValidationPolicy + "/" + a.Policy, Message: a.Message})
	}
	v.Recorder.Record(redacted(e, req))
	return resp, nil
}

// denial is the status of a denied request, with the code and reason the
// API server gives a ValidatingAdmissionPolicy's denial (its first denied
// decision's): a failed validation is 403 Forbidden, the reason every
// validation carries in the policy's native form; one that could not be
// evaluated under failurePolicy Fail has no reason of its own, and is
// 422 Invalid.
func denial(res *engine.ValidateResult) *metav1.Status {
	code, reason := int32(http.StatusForbidden), metav1.StatusReasonForbidden
	if res.Denials[0].Error {
		code, reason = http.StatusUnprocessableEntity, metav1.StatusReasonInvalid
	}
	return &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: res.DenyMessage()}
}

func policies(kind string, names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ","
		}
		out += kind + "/" + n
	}
	return out
}

func violators(vs []engine.Violation) string {
	seen := map[string]bool{}
	var names []string
	for _, v := range vs {
		if !seen[v.Policy] {
			seen[v.Policy] = true
			names = append(names, v.Policy)
		}
	}
	return policies(engine.KindValidationPolicy, names)
}

// policyErrors are a result's policy errors for the decision log and the
// portcullis_policy_errors_total metric.
func policyErrors(errs []engine.PolicyError) []decision.PolicyError {
	var out []decision.PolicyError
	for _, pe := range errs {
		if pe.Policy == "" {
			continue
		}
		fp := string(pe.FailurePolicy)
		if fp == "" {
			fp = "Fail"
		}
		out = append(out, decision.PolicyError{Policy: pe.Kind + "/" + pe.Policy, FailurePolicy: fp, Message: pe.Err.Error()})
	}
	return out
}

// exemptions are a result's exemptions for the decision log and the
// portcullis_policy_exemptions_total metric.
func exemptions(xs []engine.Exemption) []decision.Exemption {
	var out []decision.Exemption
	for _, x := range xs {
		out = append(out, decision.Exemption{Policy: x.Kind + "/" + x.Policy, Exception: engine.KindPolicyException + "/" + x.Exception})
	}
	return out
}
