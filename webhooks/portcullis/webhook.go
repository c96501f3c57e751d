package portcullis

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	admissionengine "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/authn"
	"github.com/portcullis-io/portcullis/internal/authz"
)

// Path is where the operator's ValidatingWebhookConfiguration for its own
// kinds points.
const Path = "/validate-portcullis"

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
	// AdmissionCompiler is nil when the admission group is off.
	AdmissionCompiler *admissionengine.Compiler
	// Client creates SubjectAccessReviews for the escalation check.
	Client client.Client
}

// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

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
		return v.checkEscalation(ctx, req, &p, compiled)
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
	case schema.GroupKind{Group: authnv1alpha1.GroupVersion.Group, Kind: "JWTAuthenticator"}:
		if v.AuthnCompiler == nil {
			return admission.Allowed("")
		}
		var ja authnv1alpha1.JWTAuthenticator
		if err := v.Decoder.Decode(req, &ja); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		if _, errs := authn.ValidateJWTAuthenticatorSpec(v.AuthnCompiler, &ja.Spec); len(errs) > 0 {
			return invalid(gk, ja.Name, errs)
		}
		// A JWTAuthenticator maps its issuer's claims to any identity.
		return v.requireAll(ctx, req, "JWTAuthenticator", ja.Name, "jwtauthenticators", "mint any identity", []grant{
			{Resource: &authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users"}},
			{Resource: &authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "groups"}},
		})
	case schema.GroupKind{Group: authnv1alpha1.GroupVersion.Group, Kind: "StaticToken"}:
		if v.AuthnCompiler == nil {
			return admission.Allowed("")
		}
		var st authnv1alpha1.StaticToken
		if err := v.Decoder.Decode(req, &st); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		return v.requireAll(ctx, req, "StaticToken", st.Name, "statictokens", "grant an identity", impersonations(st.Spec.User))
	}
	return admission.Allowed("")
}

// impersonations are the checks the API server's impersonation filter
// makes for acting as u: the user (or service account), each group, the
// uid and each value of each extra. A StaticToken grants exactly what
// impersonating u would, so its author needs the same rights.
func impersonations(u authnv1alpha1.UserInfo) []grant {
	imp := func(group, resource, sub, ns, name string) grant {
		return grant{Resource: &authorizationv1.ResourceAttributes{Verb: "impersonate", Group: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}}
	}
	var out []grant
	if ns, name, err := serviceaccount.SplitUsername(u.Username); err == nil {
		out = append(out, imp("", "serviceaccounts", "", ns, name))
	} else {
		out = append(out, imp("", "users", "", "", u.Username))
	}
	for _, g := range u.Groups {
		out = append(out, imp("", "groups", "", "", g))
	}
	if u.UID != "" {
		out = append(out, imp(authenticationv1.SchemeGroupVersion.Group, "uids", "", "", u.UID))
	}
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, val := range u.Extra[k] {
			out = append(out, imp(authenticationv1.SchemeGroupVersion.Group, "userextras", k, "", val))
		}
	}
	return out
}

// requireAll admits the object when its author may escalate resource (of
// the object's group, by name), or holds every check; otherwise it refuses
// with the checks that are missing. what says what the object would let its
// author do.
func (v *Validator) requireAll(ctx context.Context, req admission.Request, kind, name, resource, what string, checks []grant) admission.Response {
	ok, err := v.allowed(ctx, req, &authorizationv1.ResourceAttributes{
		Verb: "escalate", Group: req.Kind.Group, Resource: resource, Name: name,
	}, nil)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if ok {
		return admission.Allowed("")
	}
	if len(checks) > MaxEscalationChecks {
		return admission.Denied(fmt.Sprintf("%s %q needs %d permission checks, more than the %d that can be made; only a user who may escalate %s can create it", kind, name, len(checks), MaxEscalationChecks, resource))
	}
	var missing []string
	for _, c := range checks {
		ok, err := v.allowed(ctx, req, c.Resource, c.NonResource)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		if !ok {
			missing = append(missing, describe(c))
		}
	}
	if len(missing) == 0 {
		return admission.Allowed("")
	}
	sort.Strings(missing)
	return admission.Denied(fmt.Sprintf("%s %q would %s that %s may not take (escalation refused; an admin may bind the 'escalate' verb on %s): %s",
		kind, name, what, req.UserInfo.Username, resource, strings.Join(missing, "; ")))
}

// invalid answers like the API server's own validation: 422 Invalid with
// one cause per field, which kubectl prints with the field path.
func invalid(gk schema.GroupKind, name string, errs field.ErrorList) admission.Response {
	st := apierrors.NewInvalid(gk, name, errs).ErrStatus
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &st}}
}

// checkEscalation refuses an enforced Allow policy that grants something
// its author may not do, checked with SubjectAccessReviews as that author.
// The grants come from the compiled policy, the reading the engine decides
// with.
func (v *Validator) checkEscalation(ctx context.Context, req admission.Request, p *authzv1alpha1.AccessPolicy, compiled *authz.Policy) admission.Response {
	if p.Spec.Effect != authzv1alpha1.EffectAllow || p.Spec.Enforcement == authzv1alpha1.EnforcementDryRun {
		return admission.Allowed("")
	}
	return v.requireAll(ctx, req, "AccessPolicy", p.Name, "accesspolicies", "grant permissions", compiled.Grants())
}

func (v *Validator) allowed(ctx context.Context, req admission.Request, ra *authorizationv1.ResourceAttributes, nra *authorizationv1.NonResourceAttributes) (bool, error) {
	u := req.UserInfo
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: u.Username, UID: u.UID, Groups: u.Groups, ResourceAttributes: ra, NonResourceAttributes: nra,
	}}
	if len(u.Extra) > 0 {
		sar.Spec.Extra = make(map[string]authorizationv1.ExtraValue, len(u.Extra))
		for k, v := range u.Extra {
			sar.Spec.Extra[k] = authorizationv1.ExtraValue(v)
		}
	}
	if err := v.Client.Create(ctx, sar); err != nil {
		return false, fmt.Errorf("checking the author's permissions: %w", err)
	}
	return sar.Status.Allowed, nil
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
