package admission

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/admission/plugin/policy/generic"
	"k8s.io/client-go/informers"
)

// ParamSource gives the informer cache of a parameter kind: the engines
// read a policy's parameter objects from it on the request path, never
// from the API server. The operator's implementation watches the kinds
// that loaded policies name (controllers/admission).
type ParamSource interface {
	// Params returns the informer of gvk and whether the kind is
	// namespaced, or an error when the kind is unknown or not watched.
	Params(gvk schema.GroupVersionKind) (informers.GenericInformer, apimeta.RESTScope, error)
}

// params is a policy's compiled spec.paramKind and spec.paramRef.
type params struct {
	kind *admissionregistrationv1.ParamKind
	gvk  schema.GroupVersionKind
	ref  *admissionregistrationv1.ParamRef
}

// ParamKind is the policy's parameter kind, the zero kind when it has
// none, for the controller that watches it.
func (p *CompiledValidation) ParamKind() schema.GroupVersionKind { return p.params.GVK() }

// ParamKind is the policy's parameter kind, the zero kind when it has
// none, for the controller that watches it.
func (p *CompiledMutation) ParamKind() schema.GroupVersionKind { return p.params.GVK() }

// GVK is the parameter kind to watch: the zero kind when there is none,
// or no paramRef (the policy is then evaluated with params null).
func (p *params) GVK() schema.GroupVersionKind {
	if p == nil || p.ref == nil {
		return schema.GroupVersionKind{}
	}
	return p.gvk
}

// compileParams checks spec.paramKind and spec.paramRef (under path) as
// the API server checks a policy's paramKind and a binding's paramRef.
func compileParams(kind *admissionregistrationv1.ParamKind, ref *admissionregistrationv1.ParamRef, path *field.Path) (*params, field.ErrorList) {
	var errs field.ErrorList
	if kind == nil {
		if ref != nil {
			errs = append(errs, field.Forbidden(path.Child("paramRef"), "paramRef needs a paramKind"))
		}
		return nil, errs
	}
	kp := path.Child("paramKind")
	out := &params{kind: kind.DeepCopy(), ref: ref.DeepCopy()}
	gv, err := schema.ParseGroupVersion(kind.APIVersion)
	switch {
	case kind.APIVersion == "":
		errs = append(errs, field.Required(kp.Child("apiVersion"), "the parameter kind's group/version, or v1 for the core group"))
	case err != nil:
		errs = append(errs, field.Invalid(kp.Child("apiVersion"), kind.APIVersion, err.Error()))
	case gv.Version == "":
		errs = append(errs, field.Invalid(kp.Child("apiVersion"), kind.APIVersion, "a group/version names a version"))
	}
	if kind.Kind == "" {
		errs = append(errs, field.Required(kp.Child("kind"), "the parameter kind"))
	}
	out.gvk = gv.WithKind(kind.Kind)
	if ref == nil {
		return out, errs
	}
	rp := path.Child("paramRef")
	switch {
	case ref.Name != "" && ref.Selector != nil:
		errs = append(errs, field.Forbidden(rp.Child("name"), "name and selector are mutually exclusive"))
	case ref.Name == "" && ref.Selector == nil:
		errs = append(errs, field.Required(rp, "one of name or selector"))
	}
	if ref.Name != "" {
		for _, msg := range validation.IsDNS1123Subdomain(ref.Name) {
			errs = append(errs, field.Invalid(rp.Child("name"), ref.Name, msg))
		}
	}
	if ref.Selector != nil {
		if _, err := metav1.LabelSelectorAsSelector(ref.Selector); err != nil {
			errs = append(errs, field.Invalid(rp.Child("selector"), ref.Selector, err.Error()))
		}
	}
	if ref.Namespace != "" {
		for _, msg := range validation.IsDNS1123Label(ref.Namespace) {
			errs = append(errs, field.Invalid(rp.Child("namespace"), ref.Namespace, msg))
		}
	}
	switch {
	case ref.ParameterNotFoundAction == nil:
		errs = append(errs, field.Required(rp.Child("parameterNotFoundAction"), "Allow or Deny"))
	case *ref.ParameterNotFoundAction != admissionregistrationv1.AllowAction && *ref.ParameterNotFoundAction != admissionregistrationv1.DenyAction:
		errs = append(errs, field.NotSupported(rp.Child("parameterNotFoundAction"), *ref.ParameterNotFoundAction,
			[]admissionregistrationv1.ParameterNotFoundActionType{admissionregistrationv1.AllowAction, admissionregistrationv1.DenyAction}))
	}
	return out, errs
}

// noParams is what a policy without a paramKind is evaluated with: once,
// with params null.
var noParams = []runtime.Object{nil}

// collect returns the parameter objects the policy is evaluated with for
// r, as the API server collects a binding's (generic.CollectParams, with
// no fallback to the API server): none when none is found and the policy
// says Allow, an error (of the policy, under its failure policy) when it
// says Deny, the kind is not watched or its cache has not synced.
func (p *params) collect(src ParamSource, r *Request) ([]runtime.Object, error) {
	if p == nil || p.ref == nil {
		return noParams, nil
	}
	if src == nil {
		return nil, fmt.Errorf("failed to configure binding: paramKind kind `%v` not known", p.kind.String())
	}
	informer, scope, err := src.Params(p.gvk)
	if err != nil {
		return nil, fmt.Errorf("failed to configure binding: %w", err)
	}
	if !informer.Informer().HasSynced() {
		// CollectParams would wait up to a second for it, on every
		// request: an error at once, as it gives after that second.
		return nil, fmt.Errorf("failed to configure binding: paramKind kind `%v` not yet synced to use for admission", p.kind.String())
	}
	objs, err := generic.CollectParams(p.kind, informer, scope, p.ref, r.req.Namespace, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to configure binding: %w", err)
	}
	// The lister's order is a map's: in namespace and name order, a
	// policy applied once per parameter gives the same result each time.
	slices.SortFunc(objs, func(a, b runtime.Object) int {
		ma, errA := apimeta.Accessor(a)
		mb, errB := apimeta.Accessor(b)
		if errA != nil || errB != nil {
			return 0
		}
		return cmp.Or(strings.Compare(ma.GetNamespace(), mb.GetNamespace()), strings.Compare(ma.GetName(), mb.GetName()))
	})
	return objs, nil
}
