package ownkinds

import (
	"context"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	admissionengine "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
	"github.com/portcullis-io/portcullis/internal/approval"
	"github.com/portcullis-io/portcullis/internal/authn"
	"github.com/portcullis-io/portcullis/internal/authz"
)

// Path is where the operator's ValidatingWebhookConfiguration for its own
// kinds points, and ApprovePath its MutatingWebhookConfiguration.
const (
	Path        = "/validate-portcullis"
	ApprovePath = "/approve-portcullis"
)

// MaxEscalationChecks bounds the SubjectAccessReviews one AccessPolicy may
// cost: each (verb, group, resource, namespace) the policy grants is one
// check. Past it the policy is too broad to verify piece by piece, and only
// a user who may escalate can create it.
const MaxEscalationChecks = 256

// Validator validates Portcullis objects.
type Validator struct {
	Decoder admission.Decoder
	// AuthnCompiler and AuthzCompiler are nil when their group is off:
	// its kinds are then not installed and not sent here.
	AuthnCompiler authenticationcel.Compiler
	AuthzCompiler authorizationcel.Compiler
	// AuthzExclusions are the requests the rendered wiring never sends to
	// the authorization webhook: an AccessPolicy that names them is
	// admitted with a warning saying what of it does not apply.
	AuthzExclusions apiserverconfig.Exclusions
	// AdmissionCompiler is nil when the admission group is off.
	AdmissionCompiler *admissionengine.Compiler
	// Key verifies that the Approver checked the author for what the
	// object grants, as it is after every mutating webhook.
	Key approval.Key
	// DisallowedIssuers returns the API server's service-account issuers,
	// which no JWTAuthenticator may name, and whether they are known yet
	// (until they are, the controller checks again).
	DisallowedIssuers func() ([]string, bool)
	// SecretNamespace is where StaticTokens' Secrets are: the operator's
	// namespace.
	SecretNamespace string
}

func (v *Validator) disallowedIssuers() []string {
	if v.DisallowedIssuers == nil {
		return nil
	}
	issuers, _ := v.DisallowedIssuers()
	return issuers
}

// Handle implements admission.Handler.
func (v *Validator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	gk := schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
	switch gk {
	case schema.GroupKind{Group: authzv1alpha1.GroupVersion.Group, Kind: "AccessPolicy"}:
		if v.AuthzCompiler == nil {
			return admission.Allowed("")
		}
		var p authzv1alpha1.AccessPolicy
		if err := v.Decoder.Decode(req, &p); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		compiled, errs := authz.Compile(v.AuthzCompiler, &p)
		if len(errs) > 0 {
			return invalid(gk, p.Name, errs)
		}
		resp := v.approved(req, p.Name, approval.Object{Kind: gk.Kind, Spec: p.Spec, Grants: compiled.EscalationGrants()}, p.Annotations)
		if resp.Allowed {
			for _, note := range compiled.Unreached(v.AuthzExclusions) {
				resp = resp.WithWarnings(fmt.Sprintf("AccessPolicy %q does not apply where the API server never asks the webhook: %s", p.Name, note))
			}
		}
		return resp
	case schema.GroupKind{Group: admissionv1alpha1.GroupVersion.Group, Kind: "MutationPolicy"}:
		var p admissionv1alpha1.MutationPolicy
		if err := v.Decoder.Decode(req, &p); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if v.AdmissionCompiler != nil {
			if errs := admissionengine.ValidateMutationPolicy(v.AdmissionCompiler, &p); len(errs) > 0 {
				return invalid(gk, p.Name, errs)
			}
		}
		return admission.Allowed("")
	case schema.GroupKind{Group: admissionv1alpha1.GroupVersion.Group, Kind: "ValidationPolicy"}:
		var p admissionv1alpha1.ValidationPolicy
		if err := v.Decoder.Decode(req, &p); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if v.AdmissionCompiler != nil {
			if errs := admissionengine.ValidateValidationPolicy(v.AdmissionCompiler, &p); len(errs) > 0 {
				return invalid(gk, p.Name, errs)
			}
		}
		return admission.Allowed("")
	case schema.GroupKind{Group: admissionv1alpha1.GroupVersion.Group, Kind: "PolicyException"}:
		if v.AdmissionCompiler == nil {
			return admission.Allowed("")
		}
		var x admissionv1alpha1.PolicyException
		if err := v.Decoder.Decode(req, &x); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		cx, errs := admissionengine.CompileException(&x)
		if len(errs) > 0 {
			return invalid(gk, x.Name, errs)
		}
		return v.approved(req, x.Name, approval.Object{Kind: gk.Kind, Spec: x.Spec, Grants: cx.Grants()}, x.Annotations)
	case schema.GroupKind{Group: authnv1alpha1.GroupVersion.Group, Kind: "JWTAuthenticator"}:
		if v.AuthnCompiler == nil {
			return admission.Allowed("")
		}
		var ja authnv1alpha1.JWTAuthenticator
		if err := v.Decoder.Decode(req, &ja); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if _, errs := authn.ValidateJWTAuthenticatorSpec(v.AuthnCompiler, &ja.Spec, v.disallowedIssuers()); len(errs) > 0 {
			return invalid(gk, ja.Name, errs)
		}
		return v.approved(req, ja.Name, approval.Object{Kind: gk.Kind, Spec: ja.Spec, Grants: authn.JWTAuthenticatorGrants()}, ja.Annotations)
	case schema.GroupKind{Group: authnv1alpha1.GroupVersion.Group, Kind: "StaticToken"}:
		if v.AuthnCompiler == nil {
			return admission.Allowed("")
		}
		var st authnv1alpha1.StaticToken
		if err := v.Decoder.Decode(req, &st); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		return v.approved(req, st.Name, approval.Object{Kind: gk.Kind, Namespace: st.Namespace, Spec: st.Spec, Grants: authn.StaticTokenGrants(st.Spec, v.SecretNamespace)}, st.Annotations)
	}
	return admission.Allowed("")
}

// approved admits an object whose approval, written by the Approver, is
// for what it grants now: a mutating webhook after the Approver (which
// the API server then runs again) or a missing approval configuration
// would otherwise let through what was never checked. An update that
// leaves the spec of an unapproved object alone is admitted too (its
// metadata may change; it stays unserved), as the Approver admits it.
func (v *Validator) approved(req admission.Request, name string, o approval.Object, annotations map[string]string) admission.Response {
	_, err := v.Key.Verify(o, annotations)
	if err == nil {
		return admission.Allowed("")
	}
	if req.Operation == admissionv1.Update {
		gk := schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
		old, oerr := readGrants(v.Decoder, v.AuthnCompiler, v.AuthzCompiler, v.AdmissionCompiler != nil, v.SecretNamespace, gk, req.OldObject.Raw)
		if oerr == nil && old != nil && approval.SameSpec(old.Object, o) {
			if _, verr := v.Key.Verify(old.Object, old.annotations); verr != nil {
				return admission.Allowed("").WithWarnings(fmt.Sprintf("%s %q stays unapproved and unserved: %v", o.Kind, name, err))
			}
		}
	}
	return admission.Denied(fmt.Sprintf("%s %q: %v; the MutatingWebhookConfiguration that checks its author must be in place", o.Kind, name, err))
}

// invalid answers like the API server's own validation: 422 Invalid with
// one cause per field, which kubectl prints with the field path.
func invalid(gk schema.GroupKind, name string, errs field.ErrorList) admission.Response {
	st := apierrors.NewInvalid(gk, name, errs).ErrStatus
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &st}}
}

// grant is one permission check: authz.Grant's attributes.
type grant = authz.Grant

// describe says what a check asks, for a refusal's message.
func describe(g grant) string {
	if g.NonResource != nil {
		return g.NonResource.Verb + " " + g.NonResource.Path
	}
	if g.Resource.Verb == "impersonate" {
		r := g.Resource.Resource
		if g.Resource.Subresource != "" {
			r += "/" + g.Resource.Subresource
		}
		name := g.Resource.Name
		switch {
		case name == "":
			name = "any"
		case g.Resource.Namespace != "":
			name = g.Resource.Namespace + "/" + name
		}
		return fmt.Sprintf("impersonate %s %q", r, name)
	}
	r := g.Resource.Resource
	if g.Resource.Subresource != "" {
		r += "/" + g.Resource.Subresource
	}
	if g.Resource.Group != "" {
		r += "." + g.Resource.Group
	}
	if g.Resource.Name != "" {
		r += " " + g.Resource.Name
	}
	where := "all namespaces"
	if g.Resource.Namespace != "" {
		where = "namespace " + g.Resource.Namespace
	}
	return fmt.Sprintf("%s %s in %s", g.Resource.Verb, r, where)
}

// NewDecoder returns an admission decoder for s.
func NewDecoder(s *runtime.Scheme) admission.Decoder { return admission.NewDecoder(s) }
