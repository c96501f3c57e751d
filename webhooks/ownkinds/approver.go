package ownkinds

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	admissionengine "github.com/portcullis-io/portcullis/internal/admission"
	"github.com/portcullis-io/portcullis/internal/approval"
	"github.com/portcullis-io/portcullis/internal/authn"
	"github.com/portcullis-io/portcullis/internal/authz"
)

// Approver is the mutating webhook for the kinds that grant permissions or
// an identity. It checks, with SubjectAccessReviews as the author, that
// the author holds what the object grants (or may `escalate` the kind,
// the rule RBAC applies to Roles), refuses otherwise naming what is
// missing, and records the approval of the spec on the object (package
// approval): the controllers serve only what it approved. An update that
// leaves the spec as it was keeps the approval it had, so metadata changes
// need no rights over what the object grants; any change of the spec
// (its subjects, its Secret, its issuer) is checked again.
type Approver struct {
	Decoder admission.Decoder
	// AuthnCompiler and AuthzCompiler are nil when their group is off.
	AuthnCompiler authenticationcel.Compiler
	AuthzCompiler authorizationcel.Compiler
	// Admission is true when the admission group is on (PolicyExceptions).
	Admission bool
	// Client creates the SubjectAccessReviews.
	Client client.Client
	// Key signs the approvals.
	Key approval.Key
	// SecretNamespace is where StaticTokens' Secrets are: the operator's
	// namespace.
	SecretNamespace string
}

// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Handle implements admission.Handler.
func (a *Approver) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	gk := schema.GroupKind{Group: req.Kind.Group, Kind: req.Kind.Kind}
	obj, err := readGrants(a.Decoder, a.AuthnCompiler, a.AuthzCompiler, a.Admission, a.SecretNamespace, gk, req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if obj == nil || !obj.Needed() {
		// Nothing granted (a Deny or DryRun AccessPolicy): nothing to
		// check or approve (approval.Key.Verify).
		return admission.Allowed("")
	}
	var stamp map[string]string
	unchanged := false // an update that leaves the spec as it was
	var old *grantsOf
	if req.Operation == admissionv1.Update {
		old, err = readGrants(a.Decoder, a.AuthnCompiler, a.AuthzCompiler, a.Admission, a.SecretNamespace, gk, req.OldObject.Raw)
		if err == nil && old != nil {
			unchanged = approval.SameSpec(old.Object, obj.Object)
			if author, verr := a.Key.Verify(old.Object, old.annotations); unchanged && verr == nil && author != nil {
				// The spec is as its author was checked for: the approval stays.
				stamp = map[string]string{
					approval.AuthorAnnotation:   old.annotations[approval.AuthorAnnotation],
					approval.ApprovalAnnotation: old.annotations[approval.ApprovalAnnotation],
				}
			}
		}
	}
	if stamp == nil {
		if resp := a.requireAll(ctx, req, obj); !resp.Allowed {
			if unchanged && resp.Result != nil && resp.Result.Code == http.StatusForbidden {
				// An object that is not approved (written past this
				// webhook, or from before approvals) whose spec this
				// update leaves alone: its metadata may change (labels,
				// finalizers: a deletion must not hang on it), and it
				// stays unapproved, so not served: its approval
				// annotations stay what they were, so that a stamp made
				// elsewhere (for another object, or by a forged call of
				// this webhook) cannot be attached to it here.
				return restoreApproval(req.Object.Raw, old.annotations).WithWarnings(fmt.Sprintf("%s %q stays unapproved and unserved: %s", obj.Kind, obj.name, resp.Result.Message))
			}
			return resp
		}
		if stamp, err = a.Key.Approve(obj.Object, req.UserInfo); err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
	}
	return annotate(req.Object.Raw, stamp)
}

// grantsOf is one object of a kind that grants, as the escalation check
// reads it.
type grantsOf struct {
	approval.Object
	name string
	// resource is the kind's resource, for the `escalate` check; what
	// says what the object lets its author give away.
	resource, what string
	annotations    map[string]string
}

// readGrants decodes raw as gk and reads what it grants, with the readings
// the engines serve (authz.Policy.EscalationGrants, authn.Impersonations,
// authn.JWTAuthenticatorGrants). It returns nil for kinds that grant
// nothing, for a group that is off, and for an AccessPolicy that does not
// compile (the Validator refuses it with the fields named).
func readGrants(dec admission.Decoder, authnCEL authenticationcel.Compiler, authzCEL authorizationcel.Compiler, admissionOn bool, secretNamespace string, gk schema.GroupKind, raw []byte) (*grantsOf, error) {
	ext := runtime.RawExtension{Raw: raw}
	switch gk {
	case schema.GroupKind{Group: admissionv1alpha1.GroupVersion.Group, Kind: "PolicyException"}:
		if !admissionOn {
			return nil, nil
		}
		var x admissionv1alpha1.PolicyException
		if err := dec.DecodeRaw(ext, &x); err != nil {
			return nil, err
		}
		cx, errs := admissionengine.CompileException(&x)
		if len(errs) > 0 {
			return nil, nil
		}
		// As powerful as editing the policies it names.
		return &grantsOf{Object: approval.Object{Kind: gk.Kind, Spec: x.Spec, Grants: cx.Grants()},
			name: x.Name, resource: "policyexceptions", what: "exempt requests from policies", annotations: x.Annotations}, nil
	case schema.GroupKind{Group: authzv1alpha1.GroupVersion.Group, Kind: "AccessPolicy"}:
		if authzCEL == nil {
			return nil, nil
		}
		var p authzv1alpha1.AccessPolicy
		if err := dec.DecodeRaw(ext, &p); err != nil {
			return nil, err
		}
		compiled, errs := authz.Compile(authzCEL, &p)
		if len(errs) > 0 {
			return nil, nil
		}
		return &grantsOf{Object: approval.Object{Kind: gk.Kind, Spec: p.Spec, Grants: compiled.EscalationGrants()},
			name: p.Name, resource: "accesspolicies", what: "grant permissions", annotations: p.Annotations}, nil
	case schema.GroupKind{Group: authnv1alpha1.GroupVersion.Group, Kind: "JWTAuthenticator"}:
		if authnCEL == nil {
			return nil, nil
		}
		var ja authnv1alpha1.JWTAuthenticator
		if err := dec.DecodeRaw(ext, &ja); err != nil {
			return nil, err
		}
		// Its claim mappings turn the issuer's tokens into any identity.
		return &grantsOf{Object: approval.Object{Kind: gk.Kind, Spec: ja.Spec, Grants: authn.JWTAuthenticatorGrants()},
			name: ja.Name, resource: "jwtauthenticators", what: "mint any identity", annotations: ja.Annotations}, nil
	case schema.GroupKind{Group: authnv1alpha1.GroupVersion.Group, Kind: "StaticToken"}:
		if authnCEL == nil {
			return nil, nil
		}
		var st authnv1alpha1.StaticToken
		if err := dec.DecodeRaw(ext, &st); err != nil {
			return nil, err
		}
		return &grantsOf{Object: approval.Object{Kind: gk.Kind, Namespace: st.Namespace, Spec: st.Spec, Grants: authn.StaticTokenGrants(st.Spec, secretNamespace)},
			name: st.Name, resource: "statictokens", what: "grant an identity", annotations: st.Annotations}, nil
	}
	return nil, nil
}

// annotate sets the annotations on the object and answers with the patch.
func annotate(raw []byte, set map[string]string) admission.Response {
	return editAnnotations(raw, func(ann map[string]any) bool {
		changed := false
		for k, v := range set {
			if ann[k] != v {
				ann[k], changed = v, true
			}
		}
		return changed
	})
}

// restoreApproval sets the approval annotations of the object raw back to
// what they were in old (removing those old did not have).
func restoreApproval(raw []byte, old map[string]string) admission.Response {
	return editAnnotations(raw, func(ann map[string]any) bool {
		changed := false
		for _, k := range []string{approval.AuthorAnnotation, approval.ApprovalAnnotation} {
			v, had := old[k]
			switch cur, has := ann[k]; {
			case had && cur != v:
				ann[k], changed = v, true
			case !had && has:
				delete(ann, k)
				changed = true
			}
		}
		return changed
	})
}

// editAnnotations patches the annotations of the object raw with edit,
// which reports whether it changed them.
func editAnnotations(raw []byte, edit func(ann map[string]any) bool) admission.Response {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	meta, _ := obj["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		obj["metadata"] = meta
	}
	ann, _ := meta["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
		meta["annotations"] = ann
	}
	if !edit(ann) {
		return admission.Allowed("")
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(raw, out)
}

// requireAll admits the object when its author may escalate its resource
// (of the object's group, by name), or holds every grant; otherwise it
// refuses with the grants that are missing.
func (a *Approver) requireAll(ctx context.Context, req admission.Request, o *grantsOf) admission.Response {
	ok, err := a.allowed(ctx, req, &authorizationv1.ResourceAttributes{
		Verb: "escalate", Group: req.Kind.Group, Resource: o.resource, Name: o.name,
	}, nil)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if ok {
		return admission.Allowed("")
	}
	if len(o.Grants) > MaxEscalationChecks {
		return admission.Denied(fmt.Sprintf("%s %q needs %d permission checks, more than the %d that can be made; only a user who may escalate %s can create it", o.Kind, o.name, len(o.Grants), MaxEscalationChecks, o.resource))
	}
	var missing []string
	for _, c := range o.Grants {
		ok, err := a.allowed(ctx, req, c.Resource, c.NonResource)
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
		o.Kind, o.name, o.what, req.UserInfo.Username, o.resource, strings.Join(missing, "; ")))
}

// allowed asks the API server whether the request's author may do ra or
// nra.
func (a *Approver) allowed(ctx context.Context, req admission.Request, ra *authorizationv1.ResourceAttributes, nra *authorizationv1.NonResourceAttributes) (bool, error) {
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
	if err := a.Client.Create(ctx, sar); err != nil {
		return false, fmt.Errorf("checking the author's permissions: %w", err)
	}
	return sar.Status.Allowed, nil
}
