package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	jsonpatchv5 "github.com/evanphx/json-patch/v5"
	"github.com/google/cel-go/cel"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/cel/environment"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// testCompiler is built once: building the CEL environment takes tens of
// milliseconds.
var testCompiler = sync.OnceValue(func() *Compiler {
	c, err := NewCompiler()
	if err != nil {
		panic(err)
	}
	return c
})

// Operations, shorter.
const (
	create  = admissionregistrationv1.Create
	update  = admissionregistrationv1.Update
	del     = admissionregistrationv1.Delete
	connect = admissionregistrationv1.Connect
	anyOp   = admissionregistrationv1.OperationAll
)

// resourceRule is a rule for group/version/resources and operations.
func resourceRule(group, version string, resources []string, ops ...admissionregistrationv1.OperationType) admissionv1alpha1.ResourceRule {
	return admissionv1alpha1.ResourceRule{
		APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources, Operations: ops,
	}
}

// podRule matches pods on CREATE and UPDATE.
var podRule = resourceRule("", "v1", []string{"pods"}, create, update)

// matchOption changes a Match under construction.
type matchOption func(*admissionv1alpha1.Match)

func withRules(r ...admissionv1alpha1.ResourceRule) matchOption {
	return func(m *admissionv1alpha1.Match) { m.Resources = r }
}

func withNamespaceSelector(s *metav1.LabelSelector) matchOption {
	return func(m *admissionv1alpha1.Match) { m.NamespaceSelector = s }
}

func withObjectSelector(s *metav1.LabelSelector) matchOption {
	return func(m *admissionv1alpha1.Match) { m.ObjectSelector = s }
}

func withExcluded(ns ...string) matchOption {
	return func(m *admissionv1alpha1.Match) { m.ExcludedNamespaces = ns }
}

func withConditions(exprs ...string) matchOption {
	return func(m *admissionv1alpha1.Match) {
		for i, e := range exprs {
			m.Conditions = append(m.Conditions, admissionv1alpha1.MatchCondition{Name: fmt.Sprintf("c%d", i), Expression: e})
		}
	}
}

func match(opts ...matchOption) admissionv1alpha1.Match {
	m := admissionv1alpha1.Match{Resources: []admissionv1alpha1.ResourceRule{podRule}}
	for _, o := range opts {
		o(&m)
	}
	return m
}

func objectMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1", Generation: 1}
}

// validationPolicy is a ValidationPolicy with one validation per
// expression.
func validationPolicy(name string, action admissionv1alpha1.Action, m admissionv1alpha1.Match, exprs ...string) *admissionv1alpha1.ValidationPolicy {
	p := &admissionv1alpha1.ValidationPolicy{
		ObjectMeta: objectMeta(name),
		Spec:       admissionv1alpha1.ValidationPolicySpec{Match: m, Action: action},
	}
	for _, e := range exprs {
		p.Spec.Validations = append(p.Spec.Validations, admissionv1alpha1.Validation{Expression: e})
	}
	return p
}

func mutationPolicy(name string, order int32, m admissionv1alpha1.Match, mutations ...admissionv1alpha1.Mutation) *admissionv1alpha1.MutationPolicy {
	return &admissionv1alpha1.MutationPolicy{
		ObjectMeta: objectMeta(name),
		Spec:       admissionv1alpha1.MutationPolicySpec{Match: m, Order: order, Mutations: mutations},
	}
}

func setLabels(overwrite bool, kv ...string) admissionv1alpha1.Mutation {
	return admissionv1alpha1.Mutation{SetLabels: pairs(kv), Overwrite: overwrite}
}

func setAnnotations(overwrite bool, kv ...string) admissionv1alpha1.Mutation {
	return admissionv1alpha1.Mutation{SetAnnotations: pairs(kv), Overwrite: overwrite}
}

func jsonPatch(s string) admissionv1alpha1.Mutation {
	return admissionv1alpha1.Mutation{JSONPatch: &admissionv1alpha1.JSONPatch{Patch: s}}
}

func jsonPatchExpr(s string) admissionv1alpha1.Mutation {
	return admissionv1alpha1.Mutation{JSONPatch: &admissionv1alpha1.JSONPatch{Expression: s}}
}

func applyConfiguration(s string) admissionv1alpha1.Mutation {
	return admissionv1alpha1.Mutation{ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: s}}
}

func mergePatch(s string) admissionv1alpha1.Mutation {
	return admissionv1alpha1.Mutation{MergePatch: &runtime.RawExtension{Raw: []byte(s)}}
}

func pairs(kv []string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func mustCompileValidation(tb testing.TB, p *admissionv1alpha1.ValidationPolicy) *CompiledValidation {
	tb.Helper()
	c, errs := CompileValidationPolicy(testCompiler(), p)
	if len(errs) > 0 {
		tb.Fatalf("CompileValidationPolicy(%s): %v", p.Name, errs.ToAggregate())
	}
	return c
}

func mustCompileMutation(tb testing.TB, p *admissionv1alpha1.MutationPolicy) *CompiledMutation {
	tb.Helper()
	c, errs := CompileMutationPolicy(testCompiler(), p)
	if len(errs) > 0 {
		tb.Fatalf("CompileMutationPolicy(%s): %v", p.Name, errs.ToAggregate())
	}
	return c
}

// validationEngine is a ready engine serving ps.
func validationEngine(tb testing.TB, ns NamespaceLister, ps ...*admissionv1alpha1.ValidationPolicy) *ValidationEngine {
	tb.Helper()
	e := NewValidationEngine(ns)
	r := NewValidationRegistry(e)
	m := make(map[string]*CompiledValidation, len(ps))
	for _, p := range ps {
		m[p.Name] = mustCompileValidation(tb, p)
	}
	r.SetAll(m)
	r.MarkReady()
	return e
}

// mutationEngine is a ready engine serving ps.
func mutationEngine(tb testing.TB, ns NamespaceLister, ps ...*admissionv1alpha1.MutationPolicy) *MutationEngine {
	tb.Helper()
	e := NewMutationEngine(ns)
	r := NewMutationRegistry(e)
	m := make(map[string]*CompiledMutation, len(ps))
	for _, p := range ps {
		m[p.Name] = mustCompileMutation(tb, p)
	}
	r.SetAll(m)
	r.MarkReady()
	return e
}

// testNamespaces is the namespace cache tests read.
var testNamespaces = Namespaces{
	"caribou": namespace("caribou", "team", "caribou", "env", "prod"),
	"moose":   namespace("moose", "team", "moose"),
	"bare":    namespace("bare"),
}

func namespace(name string, kv ...string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: pairs(kv)}}
}

// obj is a JSON object built from a Go value.
func obj(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// podObject is a pod with labels and containers named by names; a
// container whose name starts with "priv" is privileged.
func podObject(name string, labels map[string]string, containers ...string) map[string]any {
	var cs []any
	for _, c := range containers {
		ct := map[string]any{"name": c, "image": "registry.example/" + c + ":1.0"}
		if len(c) >= 4 && c[:4] == "priv" {
			ct["securityContext"] = map[string]any{"privileged": true}
		}
		cs = append(cs, ct)
	}
	meta := map[string]any{"name": name, "namespace": "caribou"}
	if labels != nil {
		l := map[string]any{}
		for k, v := range labels {
			l[k] = v
		}
		meta["labels"] = l
	}
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   meta,
		"spec":       map[string]any{"containers": cs},
	}
}

// request is an admission request for a resource.
type request struct {
	op                      admissionv1.Operation
	group, version, kind    string
	resource, subresource   string
	namespace, name         string
	object, oldObject       []byte
	options                 []byte
	dryRun                  bool
	username                string
	groups                  []string
	requestResourceOverride *metav1.GroupVersionResource
}

func (r request) build() *admissionv1.AdmissionRequest {
	if r.version == "" {
		r.version = "v1"
	}
	if r.username == "" {
		r.username = "alice"
	}
	ar := &admissionv1.AdmissionRequest{
		UID:         "uid-1",
		Kind:        metav1.GroupVersionKind{Group: r.group, Version: r.version, Kind: r.kind},
		Resource:    metav1.GroupVersionResource{Group: r.group, Version: r.version, Resource: r.resource},
		SubResource: r.subresource,
		Name:        r.name,
		Namespace:   r.namespace,
		Operation:   r.op,
		UserInfo:    authenticationv1.UserInfo{Username: r.username, Groups: r.groups},
		Object:      runtime.RawExtension{Raw: r.object},
		OldObject:   runtime.RawExtension{Raw: r.oldObject},
		Options:     runtime.RawExtension{Raw: r.options},
		DryRun:      &r.dryRun,
	}
	ar.RequestKind = &ar.Kind
	ar.RequestResource = &ar.Resource
	if r.requestResourceOverride != nil {
		ar.RequestResource = r.requestResourceOverride
	}
	ar.RequestSubResource = r.subresource
	return ar
}

// podRequest is a pod request in namespace caribou.
func podRequest(tb testing.TB, op admissionv1.Operation, object, oldObject map[string]any) *admissionv1.AdmissionRequest {
	tb.Helper()
	r := request{op: op, kind: "Pod", resource: "pods", namespace: "caribou", name: "p"}
	if object != nil {
		r.object = obj(tb, object)
	}
	if oldObject != nil {
		r.oldObject = obj(tb, oldObject)
	}
	return r.build()
}

// applyPatch applies a mutation result's patch to the request's object
// with an independent RFC 6902 implementation and returns the result.
func applyPatch(tb testing.TB, original []byte, res MutateResult) map[string]any {
	tb.Helper()
	out := original
	if len(res.Patch) > 0 {
		patchJSON, err := res.PatchJSON()
		if err != nil {
			tb.Fatal(err)
		}
		p, err := jsonpatchv5.DecodePatch(patchJSON)
		if err != nil {
			tb.Fatalf("the result's patch does not decode: %v\n%s", err, patchJSON)
		}
		if out, err = p.Apply(original); err != nil {
			tb.Fatalf("the result's patch does not apply: %v\n%s", err, patchJSON)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// normalise round-trips v through JSON, so that values compare as
// encoding/json decodes them.
func normalise(tb testing.TB, v any) any {
	tb.Helper()
	var out any
	if err := json.Unmarshal(obj(tb, v), &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

var ctx = context.Background()

func fieldSpec() *field.Path { return field.NewPath("spec") }

// hasFieldError reports whether errs has an error at path whose text
// contains text.
func hasFieldError(errs field.ErrorList, path, text string) bool {
	for _, e := range errs {
		if e.Field == path && strings.Contains(e.Error(), text) {
			return true
		}
	}
	return false
}

func labelSelector(kv ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: pairs(kv)}
}

// contextCancelled returns a context that is already cancelled.
func contextCancelled() (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	return c, cancel
}

// compile compiles one expression in the shared scope, for tests.
func (c *Compiler) compile(path *field.Path, text string, returns *cel.Type, mode environment.Type) (*program, *field.Error) {
	s, _, _ := c.scope(nil, false, nil, mode)
	return s.compile(path, text, celVariables, returns)
}

// compileMatchIn compiles a match in the shared scope, for tests.
func compileMatchIn(c *Compiler, in *admissionv1alpha1.Match, path *field.Path, mode environment.Type, mutating bool) (*matcher, field.ErrorList) {
	s, _, _ := c.scope(nil, false, nil, mode)
	return compileMatch(s, in, path, mutating)
}
