package admission

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/client-go/kubernetes/scheme"
)

// This file applies the CEL mutations, applyConfiguration and jsonPatch's
// expression, with the API server's own patchers (its mutating admission
// policy's patch package): the expression is evaluated over the request's
// shared CEL inputs (eval.go), and the patcher type-checks its result and
// applies it, a JSON patch with evanphx/json-patch, an apply configuration
// with structured-merge-diff under the object's schema.

// TypeConverters gives the schema of a kind, which an applyConfiguration
// is merged under (lists merged by their keys, atomic fields refused) and
// what a JSON or merge patch leaves is checked against (schemacheck.go),
// or nil when it is unknown. The API server's patch.TypeConverterManager
// implements it (built-in kinds from client-go's schemas, others from the
// API server's OpenAPI); it must not block for long.
type TypeConverters interface {
	GetTypeConverter(gvk schema.GroupVersionKind) managedfields.TypeConverter
}

// BuiltinTypeConverters knows the built-in kinds, from the schemas
// client-go is generated from; other kinds are unknown.
type BuiltinTypeConverters struct{}

var builtinTypes = sync.OnceValue(func() managedfields.TypeConverter {
	return applyconfigurations.NewTypeConverter(scheme.Scheme)
})

// StaticTypeConverter is the type converter BuiltinTypeConverters uses,
// for patch.NewTypeConverterManager.
func StaticTypeConverter() managedfields.TypeConverter { return builtinTypes() }

// GetTypeConverter implements TypeConverters.
func (BuiltinTypeConverters) GetTypeConverter(gvk schema.GroupVersionKind) managedfields.TypeConverter {
	if !scheme.Scheme.Recognizes(gvk) {
		return nil
	}
	return builtinTypes()
}

// BoundedTypeConverters asks Source, which may call the API server (the
// API server's patch.TypeConverterManager fetches a custom resource's
// OpenAPI schema on first use and after it changes), for at most Timeout
// on the request path: past it the kind's schema is unknown for this
// request (an error of the policy, under its failure policy), and the
// fetch goes on in the background, one per group version, so that the
// next request finds it cached.
type BoundedTypeConverters struct {
	Source  TypeConverters
	Timeout time.Duration

	mu      sync.Mutex
	pending map[schema.GroupVersion]*schemaFetch
}

// schemaFetch is one call of Source in the background; tc is set before
// done is closed.
type schemaFetch struct {
	done chan struct{}
	tc   managedfields.TypeConverter
}

// GetTypeConverter implements TypeConverters.
func (b *BoundedTypeConverters) GetTypeConverter(gvk schema.GroupVersionKind) managedfields.TypeConverter {
	if tc := (BuiltinTypeConverters{}).GetTypeConverter(gvk); tc != nil {
		return tc
	}
	gv := gvk.GroupVersion()
	b.mu.Lock()
	if b.pending == nil {
		b.pending = map[schema.GroupVersion]*schemaFetch{}
	}
	f, ok := b.pending[gv]
	if !ok {
		f = &schemaFetch{done: make(chan struct{})}
		b.pending[gv] = f
		go func() {
			f.tc = b.Source.GetTypeConverter(gvk)
			b.mu.Lock()
			delete(b.pending, gv)
			b.mu.Unlock()
			close(f.done)
		}()
	}
	b.mu.Unlock()
	t := time.NewTimer(b.Timeout)
	defer t.Stop()
	select {
	case <-f.done:
		return f.tc
	case <-t.C:
		return nil
	}
}

// objectInterfaces is what the JSON patcher encodes and decodes the object
// with; objects are unstructured, so no type needs registering.
var objectInterfaces = admission.NewObjectInterfacesFromScheme(runtime.NewScheme())

// applyCEL applies a CEL mutation to doc, the request's object, replacing
// its content with the patcher's result.
func (r *Request) applyCEL(ctx context.Context, m *mutation, doc map[string]any, log *undoLog) error {
	if _, err := r.celInputs(); err != nil {
		return err
	}
	req := r.req
	gvk := schema.GroupVersionKind(req.Kind)
	pr := patch.Request{
		MatchedResource: schema.GroupVersionResource(req.Resource),
		VersionedAttributes: &admission.VersionedAttributes{
			Attributes:         r.attributes(),
			VersionedKind:      gvk,
			VersionedObject:    admission.NewLazyObject(r.object),
			VersionedOldObject: admission.NewLazyObject(runtimeObject(r.oldObject)),
		},
		ObjectInterfaces: objectInterfaces,
	}
	eval := &boundProgram{r: r, p: m.expr}
	var patcher patch.Patcher
	if m.kind == mutateApplyConfiguration {
		if r.types != nil {
			pr.TypeConverter = r.types.GetTypeConverter(gvk)
		}
		if pr.TypeConverter == nil {
			return fmt.Errorf("applyConfiguration: no schema is known for %s to merge with", gvk)
		}
		patcher = patch.NewApplyConfigurationPatcher(eval)
	} else {
		patcher = patch.NewJSONPatcher(eval)
	}
	out, err := patcher.Patch(ctx, pr, r.budget)
	if err != nil {
		return err
	}
	u, ok := out.(*unstructured.Unstructured)
	if !ok {
		return fmt.Errorf("the patcher returned %T, not an unstructured object", out)
	}
	if u == r.object {
		return nil // a test operation failed
	}
	// The apply configuration's result may share values with the object
	// it was merged into, which the undo log holds.
	replaceDoc(doc, copyJSON(u.Object).(map[string]any), log)
	return nil
}

// boundProgram is a mutation's expression bound to the request it is
// evaluated for: the plugincel.MutatingEvaluator the API server's patchers
// evaluate, over the request's shared CEL inputs and budget rather than
// inputs built again from the arguments (which are the same request).
type boundProgram struct {
	r *Request
	p *program
}

var _ plugincel.MutatingEvaluator = (*boundProgram)(nil)

// ForInput implements plugincel.MutatingEvaluator.
func (b *boundProgram) ForInput(ctx context.Context, _ *admission.VersionedAttributes, _ *admissionv1.AdmissionRequest, _ plugincel.OptionalVariableBindings, _ *corev1.Namespace, _ int64) (plugincel.EvaluationResult, int64, error) {
	act, err := b.r.celInputs()
	if err != nil {
		return plugincel.EvaluationResult{}, -1, err
	}
	res, err := b.r.evaluateOne(ctx, act, b.p)
	return res, b.r.budget, err
}

// CompilationErrors implements plugincel.MutatingEvaluator.
func (b *boundProgram) CompilationErrors() []error {
	if b.p.Error != nil {
		return []error{errors.New(b.p.Error.Error())}
	}
	return nil
}
