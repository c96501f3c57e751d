// Package audit evaluates ValidationPolicies against objects that already
// exist (background audit): with the admission engine the webhook serves,
// each object as if it were created now, every policy in force whatever
// its action, and aggregates the results per namespace into what a
// PolicyReport holds, bounded in size. It reads nothing itself: the
// caller lists the objects, in pages, and writes the reports.
package audit

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/admission"
)

// Outcome is a result's value, as PolicyReports name them.
type Outcome string

const (
	Pass  Outcome = "pass"
	Fail  Outcome = "fail"
	Warn  Outcome = "warn"
	Error Outcome = "error"
)

// Object names an audited object.
type Object struct {
	APIVersion, Kind, Namespace, Name string
	UID                               types.UID
}

// Result is one policy's outcome for one object.
type Result struct {
	Policy  string
	Outcome Outcome
	Message string
	Object  Object
}

// AuditUser is who an audited object is evaluated as being created by:
// no one in particular (request.userInfo has only this name).
const AuditUser = "portcullis:audit"

// Auditor evaluates objects against a fixed set of policies.
type Auditor struct {
	engine   *admission.ValidationEngine
	actions  map[string]admissionv1alpha1.Action
	excluded map[string]bool
}

// New is an Auditor of the policies, reading namespaces and parameters as
// the webhook's engine does and exempting what exempts (the PolicyExceptions
// of the webhook's engine, as they are now; nil: none); objects in the
// excluded namespaces (the operator's exclusions: admission never sees
// them), those namespaces themselves and Portcullis's own kinds are not
// audited.
func New(policies map[string]*admission.CompiledValidation, namespaces admission.NamespaceLister, params admission.ParamSource, exempts *admission.ValidationEngine, excluded []string) *Auditor {
	pair := admission.NewEngines(namespaces, params)
	e := pair.Validation
	if exempts != nil {
		e.CopyExceptions(exempts)
	}
	a := &Auditor{engine: e, actions: map[string]admissionv1alpha1.Action{}, excluded: map[string]bool{}}
	for name, p := range policies {
		pair.Validations.Set(name, p)
		a.actions[name] = p.Action
	}
	pair.Validations.MarkReady()
	for _, ns := range excluded {
		a.excluded[ns] = true
	}
	return a
}

// Audit evaluates one object of resource gvr: a result per policy that
// matches it.
func (a *Auditor) Audit(ctx context.Context, obj *unstructured.Unstructured, gvr schema.GroupVersionResource) ([]Result, error) {
	gvk := obj.GroupVersionKind()
	switch {
	case a.excluded[obj.GetNamespace()],
		gvk.Group == "" && gvk.Kind == "Namespace" && a.excluded[obj.GetName()],
		strings.HasSuffix(gvk.Group, ".portcullis.io"):
		return nil, nil
	}
	raw, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	dryRun := false
	req := &admissionv1.AdmissionRequest{
		UID: types.UID("audit-" + string(obj.GetUID())), Kind: metav1.GroupVersionKind(gvk), Resource: metav1.GroupVersionResource(gvr),
		RequestKind: ptr(metav1.GroupVersionKind(gvk)), RequestResource: ptr(metav1.GroupVersionResource(gvr)),
		Name: obj.GetName(), Namespace: obj.GetNamespace(), Operation: admissionv1.Create,
		UserInfo: authenticationv1.UserInfo{Username: AuditUser}, Object: runtime.RawExtension{Raw: raw}, DryRun: &dryRun,
	}
	res := a.engine.Validate(ctx, req)
	if res.NotReady {
		return nil, fmt.Errorf("the audit engine is not ready")
	}
	ref := Object{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID()}
	secret := gvk.Group == "" && gvk.Kind == "Secret"
	outcomes := map[string]Result{}
	add := func(v admission.Violation, o Outcome) {
		if had, seen := outcomes[v.Policy]; seen && rank[had.Outcome] >= rank[o] {
			return // a failure stands for the policy over an error
		}
		msg := truncate(v.Message)
		if secret {
			// A message expression may quote the Secret's data.
			msg = "violates ValidationPolicy " + v.Policy
		}
		outcomes[v.Policy] = Result{Policy: v.Policy, Outcome: o, Message: msg, Object: ref}
	}
	for _, list := range [][]admission.Violation{res.Denials, res.Warnings, res.Audits} {
		for _, v := range list {
			switch {
			case v.Error:
				add(v, Error)
			case a.actions[v.Policy] == admissionv1alpha1.ActionWarn:
				add(v, Warn)
			default:
				add(v, Fail)
			}
		}
	}
	for _, pe := range res.Errors {
		if pe.Policy != "" {
			add(admission.Violation{Policy: pe.Policy, Message: pe.Err.Error()}, Error)
		}
	}
	for _, name := range res.Matched {
		if _, ok := outcomes[name]; !ok {
			outcomes[name] = Result{Policy: name, Outcome: Pass, Object: ref}
		}
	}
	out := make([]Result, 0, len(outcomes))
	for _, r := range outcomes {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Policy < out[j].Policy })
	return out, nil
}

// rank orders outcomes: what a policy's result is when its validations
// differ.
var rank = map[Outcome]int{Pass: 0, Error: 1, Warn: 2, Fail: 3}

// MaxMessageBytes bounds a result's message in a report, so that a report
// of maxResults results stays far below the API server's object limit.
const MaxMessageBytes = 256

func truncate(m string) string {
	if len(m) <= MaxMessageBytes {
		return m
	}
	cut := MaxMessageBytes
	for cut > 0 && !utf8.RuneStart(m[cut]) {
		cut--
	}
	return m[:cut] + "…"
}

func ptr[T any](v T) *T { return &v }
