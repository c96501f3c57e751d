package admission

import (
	"context"
	"errors"
	"fmt"
	"slices"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/common"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/tidwall/gjson"
)

// NamespaceLister gives the namespaces that namespaceSelector and the CEL
// variable namespaceObject read. client-go's corelisters.NamespaceLister
// implements it; the operator backs it with an informer cache. It must not
// block or call the API server.
type NamespaceLister interface {
	// Get returns the namespace name, or an error for which
	// apierrors.IsNotFound is true when it is unknown.
	Get(name string) (*corev1.Namespace, error)
}

// Namespaces is a NamespaceLister over a fixed set of namespaces, by name,
// for tests and tools.
type Namespaces map[string]*corev1.Namespace

// Get implements NamespaceLister.
func (m Namespaces) Get(name string) (*corev1.Namespace, error) {
	if ns, ok := m[name]; ok {
		return ns, nil
	}
	return nil, apierrors.NewNotFound(corev1.Resource("namespaces"), name)
}

// errNoNamespaceLister is a wiring bug: a policy needs a namespace and the
// engine has no lister to find it in.
var errNoNamespaceLister = errors.New("the engine has no namespace lister")

// Request is one admission request as every policy sees it. It decodes
// the request's objects, finds its namespace and builds the CEL inputs at
// most once, on first use, and carries what is left of the request's CEL
// cost budget from one policy to the next. A Request is used by one
// goroutine.
type Request struct {
	req        *admissionv1.AdmissionRequest
	namespaces NamespaceLister

	op          operations
	isNamespace bool   // a Namespace object, not an object in a namespace
	nsName      string // the namespace the request is in, or the Namespace object's name

	// validJSON: the raw objects come from a decoder that refuses
	// invalid JSON (WithDecodedJSON), and are read without checking them
	// again.
	validJSON         bool
	decoded           bool
	partial           bool // decoded by decodeMetadata, and not completed
	decodeErr         error
	object, oldObject *unstructured.Unstructured // nil when absent

	nsLooked bool
	ns       *corev1.Namespace // nil when unknown
	nsErr    error             // not NotFound: the lister failed

	activation  *activation          // CEL inputs, built on first evaluation
	objectDirty bool                 // a mutation changed object since the activation converted it
	objectGen   uint64               // counts the mutations that changed object
	params      runtime.Object       // the parameter object policies are evaluated with
	paramGen    uint64               // counts the changes of params
	attrs       admission.Attributes // as the API server's, built with the activation
	types       TypeConverters       // the schemas applyConfiguration merges with
	vars        variableState

	budget int64
	// results is scratch space for evaluations, reused across policies.
	results []plugincel.EvaluationResult
}

// decodedKey marks a context of WithDecodedJSON.
type decodedKey struct{}

// WithDecodedJSON is ctx for evaluating a request whose object and
// oldObject were decoded from JSON by a decoder that refuses invalid JSON
// as encoding/json does (the webhook's, held to encoding/json's answer by
// FuzzUnmarshalIsEncodingJSONs): the engines read them without checking
// their syntax again. Without it, an object is checked before it is read
// (gjson, which reads members as an expression reaches them, reads valid
// JSON only).
func WithDecodedJSON(ctx context.Context) context.Context {
	return context.WithValue(ctx, decodedKey{}, true)
}

// newRequest is NewRequest for an evaluation in ctx.
func newRequest(ctx context.Context, req *admissionv1.AdmissionRequest, namespaces NamespaceLister) *Request {
	r := NewRequest(req, namespaces)
	r.validJSON, _ = ctx.Value(decodedKey{}).(bool)
	return r
}

// NewRequest prepares req for evaluation against policies. Nothing is
// decoded yet: a request that no policy's rules match costs nothing more.
// namespaces serves namespaceSelector and namespaceObject; with nil,
// namespaceObject is null and a policy with a namespaceSelector reports an
// error.
func NewRequest(req *admissionv1.AdmissionRequest, namespaces NamespaceLister) *Request {
	r := &Request{
		req:         req,
		namespaces:  namespaces,
		op:          operationBit(req.Operation),
		isNamespace: req.Resource.Group == "" && req.Resource.Resource == "namespaces",
		nsName:      req.Namespace,
		budget:      RequestCostBudget,
	}
	if r.isNamespace && r.nsName == "" {
		// The API server sets a Namespace object's namespace to its name;
		// a caller that did not is taken to mean the same.
		r.nsName = req.Name
	}
	return r
}

// decode decodes the request's object and oldObject whole, once. Objects
// that decodeMetadata decoded in part are completed in place: what was
// written to their labels and annotations stays, and so do the maps the
// undo log holds.
func (r *Request) decode() error {
	if r.decoded && !r.partial {
		return r.decodeErr
	}
	partial := r.partial
	r.decoded, r.partial = true, false
	object, err := decodeObject(r.req.Object.Raw)
	if err != nil {
		r.decodeErr = fmt.Errorf("decoding the request's object: %w", err)
		return r.decodeErr
	}
	oldObject, err := decodeObject(r.req.OldObject.Raw)
	if err != nil {
		r.decodeErr = fmt.Errorf("decoding the request's oldObject: %w", err)
		return r.decodeErr
	}
	if !partial {
		r.object, r.oldObject = object, oldObject
		return nil
	}
	completeObject(r.object, object)
	completeObject(r.oldObject, oldObject)
	return nil
}

// decodeMetadata decodes, once, what labels and annotations mutations,
// object selectors and a Namespace's own labels read: each object's
// metadata.labels and metadata.annotations, in an object that has nothing
// else (partialObject). Setting a label then neither decodes nor encodes
// the rest (its managedFields, its spec); anything that reads more calls
// decode, which completes the objects. Objects that are not valid JSON
// objects are decoded whole, for decode's error.
func (r *Request) decodeMetadata() error {
	if r.decoded {
		return r.decodeErr
	}
	object, ok := partialObject(r.req.Object.Raw, r.validJSON)
	if !ok {
		return r.decode()
	}
	oldObject, ok := partialObject(r.req.OldObject.Raw, r.validJSON)
	if !ok {
		return r.decode()
	}
	r.decoded, r.partial = true, true
	r.object, r.oldObject = object, oldObject
	return nil
}

// partialMembers are the members of metadata a partial object has.
var partialMembers = [...]string{"labels", "annotations"}

// partialObject is the JSON object raw with only its metadata's labels
// and annotations, each decoded as decodeObject decodes it (a key given
// twice is its last value); a metadata that is not an object is kept
// whole. ok is false when raw is not a valid JSON object (nor empty, nor
// null); valid says it is valid JSON, checked already.
func partialObject(raw []byte, valid bool) (obj *unstructured.Unstructured, ok bool) {
	if len(raw) == 0 {
		return nil, true
	}
	if !valid && !gjson.ValidBytes(raw) {
		return nil, false
	}
	root := gjson.ParseBytes(raw)
	switch {
	case root.Type == gjson.Null:
		return nil, true
	case !root.IsObject():
		return nil, false
	}
	var meta gjson.Result
	root.ForEach(func(k, v gjson.Result) bool {
		if decodedString(k.Str) == "metadata" {
			meta = v
		}
		return true
	})
	out := &unstructured.Unstructured{Object: map[string]any{}}
	switch {
	case !meta.Exists():
		return out, true
	case !meta.IsObject():
		var v any
		if err := utiljson.Unmarshal([]byte(meta.Raw), &v); err != nil {
			return nil, false
		}
		out.Object["metadata"] = v
		return out, true
	}
	var members [len(partialMembers)]gjson.Result
	meta.ForEach(func(k, v gjson.Result) bool {
		if i := slices.Index(partialMembers[:], decodedString(k.Str)); i >= 0 {
			members[i] = v
		}
		return true
	})
	m := make(map[string]any, len(partialMembers))
	for i, v := range members {
		if !v.Exists() {
			continue
		}
		if x, ok := stringMap(v); ok {
			m[partialMembers[i]] = x
			continue
		}
		var x any
		if err := utiljson.Unmarshal([]byte(v.Raw), &x); err != nil {
			return nil, false
		}
		m[partialMembers[i]] = x
	}
	out.Object["metadata"] = m
	return out, true
}

// stringMap is the valid JSON v decoded, if it is an object of strings,
// as labels and annotations are: what the decoder makes of it, with no
// second pass over its text. ok is false for anything else.
func stringMap(v gjson.Result) (m map[string]any, ok bool) {
	if !v.IsObject() {
		return nil, false
	}
	m, ok = map[string]any{}, true
	v.ForEach(func(k, e gjson.Result) bool {
		if e.Type != gjson.String {
			ok = false
			return false
		}
		m[decodedString(k.Str)] = decodedString(e.Str)
		return true
	})
	return m, ok
}

// completeObject adds to the partial object part what else the whole
// object has: its other members, and its metadata's. part keeps its own
// maps and what was written to them.
func completeObject(part, whole *unstructured.Unstructured) {
	if part == nil || whole == nil {
		return
	}
	for k, v := range whole.Object {
		if k != "metadata" {
			part.Object[k] = v
			continue
		}
		pm, ok1 := part.Object["metadata"].(map[string]any)
		wm, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			continue // kept whole, or written by a mutation
		}
		for mk, mv := range wm {
			if !slices.Contains(partialMembers[:], mk) {
				pm[mk] = mv
			}
		}
	}
}

// decodeObject decodes a JSON object the way the API server's unstructured
// decoder does (integers as int64); empty or null is no object.
func decodeObject(raw []byte) (*unstructured.Unstructured, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var v any
	if err := utiljson.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	switch o := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return &unstructured.Unstructured{Object: o}, nil
	default:
		return nil, fmt.Errorf("not a JSON object but %T", v)
	}
}

// objectChanged tells the request that a mutation changed its object in
// place, so that CEL sees the new one.
func (r *Request) objectChanged() {
	// Converted again only if a later policy evaluates CEL.
	r.objectDirty = true
	r.objectGen++
}

// setParams sets the parameter object the next expressions see as
// params: nil for none (params is null).
func (r *Request) setParams(obj runtime.Object) {
	if obj == r.params {
		return
	}
	r.params = obj
	r.paramGen++
	if r.activation != nil {
		r.activation.params = paramsValue(obj)
	}
}

// paramsValue is a parameter object as a CEL variable, converted as the
// object is; null when absent.
func paramsValue(obj runtime.Object) any {
	switch o := obj.(type) {
	case nil:
		return nil
	case *unstructured.Unstructured:
		if o == nil {
			return nil
		}
		return celValue(o.Object)
	default:
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return types.NewErr("converting the parameter object: %v", err)
		}
		return celValue(u)
	}
}

// variableState is the variables of the policy last evaluated: its
// composition, for the object as it was then.
type variableState struct {
	owner     *plugincel.CompositedCompiler
	objectGen uint64
	paramGen  uint64
	ctx       plugincel.CompositionContext
	value     ref.Val
}

// namespace looks the request's namespace up once. A namespace the lister
// does not know is nil with no error.
func (r *Request) namespace() (*corev1.Namespace, error) {
	if !r.nsLooked {
		r.nsLooked = true
		switch {
		case r.nsName == "":
		case r.namespaces == nil:
			r.nsErr = errNoNamespaceLister
		default:
			ns, err := r.namespaces.Get(r.nsName)
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				r.nsErr = fmt.Errorf("looking up namespace %q: %w", r.nsName, err)
			default:
				r.ns = ns
			}
		}
	}
	return r.ns, r.nsErr
}

// namespaceLabels returns the labels a namespaceSelector selects on: a
// Namespace object's own (the new object's when it is being created or
// updated, else the stored one's), or those of the namespace the object is
// in. ok is false for cluster-scoped objects other than namespaces, which
// have none.
func (r *Request) namespaceLabels() (l labels.Labels, ok bool, err error) {
	if r.isNamespace {
		if err := r.decodeMetadata(); err != nil {
			return nil, false, err
		}
		switch {
		case r.req.SubResource == "" && (r.op == opCreate || r.op == opUpdate) && r.object != nil:
			return objectLabels(r.object), true, nil
		case r.oldObject != nil:
			return objectLabels(r.oldObject), true, nil
		}
	} else if r.nsName == "" {
		return nil, false, nil
	}
	ns, err := r.namespace()
	if err != nil {
		return nil, false, err
	}
	if ns == nil {
		// The API server does not admit objects into a namespace that does
		// not exist, so an unknown namespace is a cache that lags: an error,
		// so that the webhook's failurePolicy decides, not a silent
		// mismatch.
		return nil, false, fmt.Errorf("namespace %q is not in the namespace cache yet", r.nsName)
	}
	return labels.Set(ns.Labels), true, nil
}

// unstructuredLabels reads metadata.labels of an unstructured object in
// place, without copying them into a labels.Set.
type unstructuredLabels map[string]any

func (l unstructuredLabels) Has(key string) bool {
	_, ok := l[key]
	return ok
}

func (l unstructuredLabels) Get(key string) string {
	s, _ := l[key].(string)
	return s
}

func (l unstructuredLabels) Lookup(key string) (string, bool) {
	v, ok := l[key]
	if !ok {
		return "", false
	}
	s, _ := v.(string)
	return s, true
}

// objectLabels returns the labels of o, read in place.
func objectLabels(o *unstructured.Unstructured) labels.Labels {
	meta, _ := o.Object["metadata"].(map[string]any)
	l, _ := meta["labels"].(map[string]any)
	return unstructuredLabels(l)
}

// celInputs builds, once, what the API server passes a
// ValidatingAdmissionPolicy's expressions: object and oldObject, the
// request as plugincel.CreateAdmissionRequest builds it from the
// admission attributes, and the namespace as
// plugincel.CreateNamespaceObject trims it, when first read (see
// namespaceObject).
func (r *Request) celInputs() (*activation, error) {
	if r.activation != nil {
		if r.objectDirty {
			if err := r.decode(); err != nil { // a partial object, completed
				return nil, err
			}
			r.activation.setObject(r.object)
			r.objectDirty = false
		}
		return r.activation, nil
	}
	// CEL values straight from the JSON, unless the objects are decoded
	// already (a mutation, a selector): one pass either way. Objects
	// decoded in part and not written to are read from the JSON.
	var object, oldObject any
	if r.decoded && !(r.partial && r.objectGen == 0) {
		if err := r.decode(); err != nil {
			return nil, err
		}
		object, oldObject = objectValue(r.object), objectValue(r.oldObject)
	} else {
		var err error
		if object, err = celValueOfJSON(r.req.Object.Raw, r.validJSON); err != nil {
			return nil, fmt.Errorf("decoding the request's object: %w", err)
		}
		if oldObject, err = celValueOfJSON(r.req.OldObject.Raw, r.validJSON); err != nil {
			return nil, fmt.Errorf("decoding the request's oldObject: %w", err)
		}
	}
	req := r.req
	r.objectDirty = false
	r.activation = newActivation(object, oldObject, func() *admissionv1.AdmissionRequest {
		return plugincel.CreateAdmissionRequest(r.attributes(), req.Resource, req.Kind)
	}, r.namespaceObject)
	r.activation.params = paramsValue(r.params)
	return r.activation, nil
}

// namespaceObject is CEL's namespaceObject: the request's namespace as the
// API server gives it (plugincel.CreateNamespaceObject), null for a
// cluster-scoped request and, as there, for a Namespace object (whose
// namespace is its own name). A namespace the lister does not know is an
// error, not null: the API server reads one its cache misses from storage
// and fails the request if that fails, so a request in a namespace is
// never judged as cluster-scoped; here, where no API call is made on the
// request path, the cache lags behind a namespace created a moment ago.
// Built when an expression first reads it, the error is that expression's
// (its policy's failurePolicy decides), and policies that do not read it
// are not held up by the lag; CEL returns a result despite the error only
// when the namespace could not change it (false && namespaceObject...).
func (r *Request) namespaceObject() any {
	req := r.req
	if (req.Kind.Group == "" && req.Kind.Kind == "Namespace") || r.namespaces == nil {
		return common.SchemalessTypedToVal((*corev1.Namespace)(nil))
	}
	found, err := r.namespace()
	switch {
	case err != nil:
		return types.NewErr("namespaceObject: %v", err)
	case found == nil && r.nsName != "":
		return types.NewErr("namespaceObject: namespace %q is not in the namespace cache yet", r.nsName)
	}
	return common.SchemalessTypedToVal(plugincel.CreateNamespaceObject(found))
}

// attributes builds, once, the request's admission.Attributes as the API
// server's: what request is made of, and what its patchers are given.
func (r *Request) attributes() admission.Attributes {
	if r.attrs != nil {
		return r.attrs
	}
	req := r.req
	// The attributes carry what the request asked for; kind and resource
	// are what matched (they differ when the webhook configuration's
	// matchPolicy is Equivalent and the API server converted the object).
	requestKind, requestResource, requestSub := req.Kind, req.Resource, req.SubResource
	if req.RequestKind != nil {
		requestKind = *req.RequestKind
	}
	if req.RequestResource != nil {
		requestResource = *req.RequestResource
		requestSub = req.RequestSubResource
	}
	var options runtime.Object
	if len(req.Options.Raw) > 0 {
		// Unknown marshals back to its raw JSON, so request.options is the
		// options object as sent, decoded only if an expression reads it.
		options = &runtime.Unknown{Raw: req.Options.Raw, ContentType: runtime.ContentTypeJSON}
	}
	dryRun := req.DryRun != nil && *req.DryRun
	userInfo := &user.DefaultInfo{
		Name:   req.UserInfo.Username,
		UID:    req.UserInfo.UID,
		Groups: req.UserInfo.Groups,
	}
	if len(req.UserInfo.Extra) > 0 {
		userInfo.Extra = make(map[string][]string, len(req.UserInfo.Extra))
		for k, v := range req.UserInfo.Extra {
			userInfo.Extra[k] = v
		}
	}
	r.attrs = admission.NewAttributesRecord(
		runtimeObject(r.object), runtimeObject(r.oldObject),
		schema.GroupVersionKind(requestKind), req.Namespace, req.Name,
		schema.GroupVersionResource(requestResource), requestSub,
		admission.Operation(req.Operation), options, dryRun, userInfo)
	return r.attrs
}

// runtimeObject returns o as a runtime.Object, nil (not a typed nil) when
// absent.
func runtimeObject(o *unstructured.Unstructured) runtime.Object {
	if o == nil {
		return nil
	}
	return o
}

// budgetFor gives the request a new budget for the next policy's
// expressions (RequestCostBudget, or ConditionsCostBudget for match
// conditions), as the API server gives each binding its own.
func (r *Request) budgetFor(budget int64) {
	r.budget = budget
	r.newComposition()
}

// newComposition starts expressions that read the policy's variables
// afresh, as each of the API server's evaluations (a ForInput: the match
// conditions, the validations, the messageExpressions, the audit
// annotations, each mutation) composes them anew: a variable is evaluated,
// and charged, again in each.
func (r *Request) newComposition() { r.vars = variableState{} }

// RemainingBudget is the CEL cost the request may still spend.
func (r *Request) RemainingBudget() int64 { return r.budget }
