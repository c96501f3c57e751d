package admission

import (
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/client-go/dynamic/dynamicinformer"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/admission/admissiontest"
)

func TestCELMutations(t *testing.T) {
	containers := func(p map[string]any) []any { return spec(p)["containers"].([]any) }
	tests := []struct {
		name      string
		variables []admissionregistrationv1.Variable
		mutations []admissionv1alpha1.Mutation
		want      map[string]any
	}{
		{"applyConfiguration on every container, merged by name", nil,
			[]admissionv1alpha1.Mutation{applyConfiguration(`Object{spec: Object.spec{containers: object.spec.containers.map(c, Object.spec.containers{name: c.name, securityContext: Object.spec.containers.securityContext{allowPrivilegeEscalation: false}})}}`)},
			edit(func(p map[string]any) {
				for _, c := range containers(p) {
					c.(map[string]any)["securityContext"] = map[string]any{"allowPrivilegeEscalation": false}
				}
			})},
		{"applyConfiguration copies a label from the namespace", nil,
			[]admissionv1alpha1.Mutation{applyConfiguration(`Object{metadata: Object.metadata{labels: {"env": namespaceObject.metadata.labels["env"]}}}`)},
			edit(func(p map[string]any) { meta(p)["labels"].(map[string]any)["env"] = "prod" })},
		// As the API server's, object's lists and maps read natively (the
		// merge calls Value on a list's elements) are maps of strings.
		{"applyConfiguration copies a list of objects from object", nil,
			[]admissionv1alpha1.Mutation{applyConfiguration(`Object{spec: Object.spec{initContainers: object.spec.containers}}`)},
			edit(func(p map[string]any) { spec(p)["initContainers"] = containers(basePod()) })},
		{"applyConfiguration copies an element of a list into a list", nil,
			[]admissionv1alpha1.Mutation{applyConfiguration(`Object{spec: Object.spec{initContainers: [object.spec.containers[1], object.spec.containers[0]]}}`)},
			edit(func(p map[string]any) {
				cs := containers(basePod())
				spec(p)["initContainers"] = []any{cs[1], cs[0]}
			})},
		{"jsonPatch expression with escapeKey", nil,
			[]admissionv1alpha1.Mutation{jsonPatchExpr(`[JSONPatch{op: "add", path: "/metadata/annotations/" + jsonpatch.escapeKey("example.com/containers"), value: string(size(object.spec.containers))}]`)},
			edit(func(p map[string]any) { meta(p)["annotations"].(map[string]any)["example.com/containers"] = "2" })},
		{"jsonPatch expression whose test fails changes nothing", nil,
			[]admissionv1alpha1.Mutation{jsonPatchExpr(`[JSONPatch{op: "test", path: "/spec/enableServiceLinks", value: false}, JSONPatch{op: "replace", path: "/spec/enableServiceLinks", value: false}]`)},
			basePod()},
		{"variables, read by a later mutation after an earlier one changed the object",
			[]admissionregistrationv1.Variable{{Name: "count", Expression: "size(object.spec.containers)"}, {Name: "label", Expression: `"n" + string(variables.count)`}},
			[]admissionv1alpha1.Mutation{
				jsonPatchExpr(`[JSONPatch{op: "add", path: "/spec/containers/-", value: Object.spec.containers{name: "added", image: "x"}}]`),
				applyConfiguration(`Object{metadata: Object.metadata{labels: {"containers": variables.label}}}`),
			},
			edit(func(p map[string]any) {
				spec(p)["containers"] = append(containers(p), map[string]any{"name": "added", "image": "x"})
				meta(p)["labels"].(map[string]any)["containers"] = "n3"
			})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mutationPolicy("m", 0, match(), tt.mutations...)
			p.Spec.Variables = tt.variables
			if errs := ValidateMutationPolicy(testCompiler(), p); len(errs) > 0 {
				t.Fatal(errs)
			}
			e := mutationEngine(t, testNamespaces, p)
			req := podRequest(t, admissionv1.Create, basePod(), nil)
			res := e.Mutate(ctx, req)
			// The append is not idempotent: applied again, it appends
			// again. Only the first pass is wanted here.
			if tt.name == "variables, read by a later mutation after an earlier one changed the object" {
				if !strings.Contains(res.Rejection(), "passes over the policies") {
					t.Fatalf("an unguarded append: rejection %q, want the policy's error for not settling", res.Rejection())
				}
				p.Spec.Match = match(withConditions(`!object.spec.containers.exists(c, c.name == "added")`))
				e = mutationEngine(t, testNamespaces, p)
				res = e.Mutate(ctx, req)
			}
			if err := res.Err(); err != nil || res.Rejection() != "" {
				t.Fatalf("Err %v, rejection %q", err, res.Rejection())
			}
			got := applyPatch(t, req.Object.Raw, res)
			if want := normalise(t, tt.want); !reflect.DeepEqual(any(got), want) {
				t.Errorf("mutated object:\n got %v\nwant %v\npatch %v", got, want, res.Patch)
			}
			// Reinvoked on what it produced, it changes nothing.
			again := e.Mutate(ctx, podRequest(t, admissionv1.Update, got, basePod()))
			if again.Err() != nil || again.Rejection() != "" || again.Patch != nil {
				t.Errorf("reinvoked: patch %v, errors %v", again.Patch, again.Errors)
			}
		})
	}
}

// An RFC 6902 patch that fails when applied again to what it produced is
// the policy's error, saying why.
func TestMutationNotIdempotent(t *testing.T) {
	e := mutationEngine(t, testNamespaces,
		mutationPolicy("drop-toleration", 0, match(), jsonPatch(`[{"op":"remove","path":"/spec/tolerations/0"}]`)))
	res := e.Mutate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	if msg := res.Rejection(); !strings.Contains(msg, "a mutation must be idempotent") {
		t.Fatalf("Rejection() = %q", msg)
	}
	// Guarded by a condition, it applies once.
	e = mutationEngine(t, testNamespaces,
		mutationPolicy("drop-toleration", 0, match(withConditions("size(object.spec.tolerations) > 0")), jsonPatch(`[{"op":"remove","path":"/spec/tolerations/0"}]`)))
	req := podRequest(t, admissionv1.Create, basePod(), nil)
	res = e.Mutate(ctx, req)
	if res.Rejection() != "" || len(spec(applyPatch(t, req.Object.Raw, res))["tolerations"].([]any)) != 0 {
		t.Fatalf("guarded: rejection %q, patch %v", res.Rejection(), res.Patch)
	}
}

func TestVariablesCompileErrors(t *testing.T) {
	tests := []struct {
		name      string
		vars      []admissionregistrationv1.Variable
		expr      string
		wantField string
		wantText  string
	}{
		{"not an identifier", []admissionregistrationv1.Variable{{Name: "a-b", Expression: "1"}}, "true", "spec.variables[0].name", "valid CEL identifier"},
		{"reserved", []admissionregistrationv1.Variable{{Name: "in", Expression: "1"}}, "true", "spec.variables[0].name", "valid CEL identifier"},
		{"duplicate", []admissionregistrationv1.Variable{{Name: "a", Expression: "1"}, {Name: "a", Expression: "2"}}, "true", "spec.variables[1].name", "Duplicate"},
		{"no expression", []admissionregistrationv1.Variable{{Name: "a"}}, "true", "spec.variables[0].expression", "Required"},
		{"does not compile", []admissionregistrationv1.Variable{{Name: "a", Expression: "object."}}, "true", "spec.variables[0].expression", "Syntax error"},
		{"typed", []admissionregistrationv1.Variable{{Name: "a", Expression: "1"}}, "variables.a == 'x'", "spec.validations[0].expression", "no matching overload"},
		{"reads one after it", []admissionregistrationv1.Variable{{Name: "a", Expression: "variables.b"}, {Name: "b", Expression: "1"}}, "true", "spec.variables[0].expression", "undefined field 'b'"},
		{"undeclared without variables", nil, "variables.a", "spec.validations[0].expression", "undeclared reference to 'variables'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validationPolicy("v", admissionv1alpha1.ActionDeny, match(), tt.expr)
			p.Spec.Variables = tt.vars
			if errs := ValidateValidationPolicy(testCompiler(), p); !hasFieldError(errs, tt.wantField, tt.wantText) {
				t.Errorf("errors = %v, want one at %s containing %q", errs, tt.wantField, tt.wantText)
			}
			m := mutationPolicy("m", 0, match(), setLabels(false, "a", "b"))
			m.Spec.Variables = tt.vars
			m.Spec.Match.Conditions = []admissionv1alpha1.MatchCondition{{Name: "c", Expression: tt.expr}}
			wantField := strings.Replace(tt.wantField, "spec.validations[0]", "spec.match.conditions[0]", 1)
			if errs := ValidateMutationPolicy(testCompiler(), m); !hasFieldError(errs, wantField, tt.wantText) {
				t.Errorf("MutationPolicy: errors = %v, want one at %s containing %q", errs, wantField, tt.wantText)
			}
		})
	}
}

func TestVariables(t *testing.T) {
	p := validationPolicy("v", admissionv1alpha1.ActionDeny, match(withConditions("variables.isPod")),
		"variables.images.all(i, i.startsWith(variables.registry))")
	p.Spec.Variables = []admissionregistrationv1.Variable{
		{Name: "isPod", Expression: "object.kind == 'Pod'"},
		{Name: "registry", Expression: "'registry.example/'"},
		{Name: "images", Expression: "object.spec.containers.map(c, c.image)"},
		{Name: "broken", Expression: "object.spec.missing"},
	}
	p.Spec.Validations[0].MessageExpression = "'images: ' + variables.images.join(', ')"
	p.Spec.Validations = append(p.Spec.Validations, admissionv1alpha1.Validation{Expression: "variables.broken == 1"})
	e := validationEngine(t, testNamespaces, p)
	res := e.Validate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	// The first validation passes, the second reads a variable that fails
	// to evaluate: an error of that validation only.
	if len(res.Denials) != 1 || res.Denials[0].Index != 1 || !strings.Contains(res.Denials[0].Message, `composited variable "broken" fails to evaluate`) {
		t.Fatalf("denials %+v", res.Denials)
	}
	bad := basePod()
	spec(bad)["containers"].([]any)[0].(map[string]any)["image"] = "docker.io/x"
	p.Spec.Validations = p.Spec.Validations[:1]
	e = validationEngine(t, testNamespaces, p)
	res = e.Validate(ctx, podRequest(t, admissionv1.Create, bad, nil))
	if len(res.Denials) != 1 || res.Denials[0].Message != "images: docker.io/x, registry.example/sidecar:1.0" {
		t.Fatalf("denials %+v", res.Denials)
	}
}

func TestAuditAnnotations(t *testing.T) {
	p := validationPolicy("replicas.example.com", admissionv1alpha1.ActionDeny, match(), "true")
	p.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{
		{Key: "containers", ValueExpression: "'pod has ' + string(size(object.spec.containers)) + ' containers'"},
		{Key: "none", ValueExpression: "null"},
		{Key: "empty", ValueExpression: "'  '"},
	}
	e := validationEngine(t, testNamespaces, p)
	res := e.Validate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	want := map[string]string{"replicas.example.com.containers": "pod has 2 containers"}
	if got := res.AuditAnnotations(); !reflect.DeepEqual(got, want) || len(res.Denials) > 0 {
		t.Fatalf("audit annotations %v, denials %v; want %v", got, res.Denials, want)
	}
	// One that fails to evaluate is the policy's error: under Fail it
	// denies, as a ValidatingAdmissionPolicy's does.
	p.Spec.AuditAnnotations = append(p.Spec.AuditAnnotations, admissionregistrationv1.AuditAnnotation{Key: "broken", ValueExpression: "string(object.spec.missing)"})
	res = validationEngine(t, testNamespaces, p).Validate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	if len(res.Denials) != 1 || !strings.Contains(res.Denials[0].Message, "auditAnnotations[3]") {
		t.Fatalf("denials %+v", res.Denials)
	}
	p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	res = validationEngine(t, testNamespaces, p).Validate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	if len(res.Denials) != 0 || res.AuditAnnotations()["replicas.example.com.containers"] == "" {
		t.Fatalf("under Ignore: denials %+v, annotations %v", res.Denials, res.AuditAnnotations())
	}

	for _, tt := range []struct {
		policy, key, want string
	}{
		{"p", "", "Required"},
		{"p", "a/b", "no \"/\""},
		{"p", "-a", "Invalid value"},
		{strings.Repeat("p", 60), "key", "must be no more than 63 bytes"},
	} {
		q := validationPolicy(tt.policy, admissionv1alpha1.ActionDeny, match(), "true")
		q.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: tt.key, ValueExpression: "'x'"}}
		if errs := ValidateValidationPolicy(testCompiler(), q); !hasFieldError(errs, "spec.auditAnnotations[0].key", tt.want) {
			t.Errorf("key %q of %q: errors %v, want %q", tt.key, tt.policy, errs, tt.want)
		}
	}
	q := validationPolicy("p", admissionv1alpha1.ActionDeny, match(), "true")
	q.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "k", ValueExpression: "1"}}
	if errs := ValidateValidationPolicy(testCompiler(), q); !hasFieldError(errs, "spec.auditAnnotations[0].valueExpression", "must evaluate to one of") {
		t.Errorf("an int valueExpression: errors %v", errs)
	}
}

func TestMatchPolicy(t *testing.T) {
	// A request made through apps/v1beta2, which the API server converted
	// to apps/v1 for the webhook (matchPolicy Equivalent in the webhook
	// configuration).
	rq := request{op: admissionv1.Create, kind: "Deployment", group: "apps", version: "v1", resource: "deployments", namespace: "caribou", name: "d",
		object: obj(t, map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d", "namespace": "caribou"}})}
	req := rq.build()
	req.RequestResource = ptr.To(req.Resource)
	req.RequestResource.Version = "v1beta2"
	for _, tt := range []struct {
		policy *admissionregistrationv1.MatchPolicyType
		want   bool
	}{{nil, true}, {ptr.To(admissionregistrationv1.Equivalent), true}, {ptr.To(admissionregistrationv1.Exact), false}} {
		m := match(withRules(resourceRule("apps", "v1", []string{"deployments"}, anyOp)))
		m.MatchPolicy = tt.policy
		e := validationEngine(t, testNamespaces, validationPolicy("v", admissionv1alpha1.ActionDeny, m, "false"))
		if got := len(e.Validate(ctx, req).Matched) == 1; got != tt.want {
			t.Errorf("matchPolicy %v: matched %v, want %v", ptr.Deref(tt.policy, ""), got, tt.want)
		}
	}
}

// A MutationPolicy's audit annotations see the object as it left it; a
// ValidationPolicy's, evaluated once per parameter object, are joined as
// the API server joins a binding's.
func TestAuditAnnotationsOfMutationsAndParams(t *testing.T) {
	m := mutationPolicy("team.example.com", 0, match(), setLabels(true, "team", "antlers"))
	m.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "team", ValueExpression: "string(object.metadata.labels['team'])"}}
	res := mutationEngine(t, testNamespaces, m).Mutate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	if want := map[string]string{"team.example.com.team": "antlers"}; !reflect.DeepEqual(res.AuditAnnotations(), want) || res.Rejection() != "" {
		t.Fatalf("annotations %v, rejection %q; want %v", res.AuditAnnotations(), res.Rejection(), want)
	}
	m.Spec.AuditAnnotations = append(m.Spec.AuditAnnotations, admissionregistrationv1.AuditAnnotation{Key: "broken", ValueExpression: "string(object.spec.missing)"})
	res = mutationEngine(t, testNamespaces, m).Mutate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	if !strings.Contains(res.Rejection(), "auditAnnotations[1]") {
		t.Fatalf("a failing annotation under Fail: rejection %q", res.Rejection())
	}

	src := newConfigMapParams(t,
		limits("a", "caribou", "1", map[string]string{"limit": "yes"}),
		limits("b", "caribou", "2", map[string]string{"limit": "yes"}),
		limits("c", "caribou", "2", map[string]string{"limit": "yes"}))
	v := validationPolicy("limits.example.com", admissionv1alpha1.ActionDeny, match(), "true")
	v.Spec.ParamKind = configMapKind
	v.Spec.ParamRef = &admissionregistrationv1.ParamRef{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"limit": "yes"}}, ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)}
	v.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "max", ValueExpression: "string(params.data.maxContainers)"}}
	e := validationEngine(t, testNamespaces, v)
	e.UseParams(src)
	vres := e.Validate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	got := vres.AuditAnnotations()["limits.example.com.max"]
	if got != "1, 2" {
		t.Fatalf("joined annotation %q, want \"1, 2\"", got)
	}
}

// slowTypes answers after a delay, as the API server's
// TypeConverterManager does when it fetches a schema.
type slowTypes struct {
	delay atomic.Int64 // a time.Duration
	calls atomic.Int32
}

func (s *slowTypes) GetTypeConverter(schema.GroupVersionKind) managedfields.TypeConverter {
	s.calls.Add(1)
	time.Sleep(time.Duration(s.delay.Load()))
	return StaticTypeConverter()
}

// The request path waits for a schema no longer than the bound, and one
// fetch per group version goes on meanwhile.
func TestBoundedTypeConverters(t *testing.T) {
	src := &slowTypes{}
	src.delay.Store(int64(300 * time.Millisecond))
	b := &BoundedTypeConverters{Source: src, Timeout: 20 * time.Millisecond}
	crd := schema.GroupVersionKind{Group: "rules.example.com", Version: "v1", Kind: "ReplicaLimit"}
	start := time.Now()
	for range 5 {
		if tc := b.GetTypeConverter(crd); tc != nil {
			t.Fatal("a schema before the fetch ended")
		}
	}
	if took := time.Since(start); took > 250*time.Millisecond {
		t.Fatalf("five lookups took %v: they waited for the fetch", took)
	}
	if b.GetTypeConverter(corev1.SchemeGroupVersion.WithKind("Pod")) == nil {
		t.Fatal("a built-in kind waited for the fetch")
	}
	time.Sleep(400 * time.Millisecond)
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("%d fetches, want one", n)
	}
	src.delay.Store(0)
	if b.GetTypeConverter(crd) == nil {
		t.Fatal("no schema once it is fetched")
	}
}

// A mutation policy failing with its second parameter object is undone
// whole, its audit annotations too.
func TestMutationParamsRollBackWhole(t *testing.T) {
	src := newConfigMapParams(t,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "caribou", Labels: map[string]string{"p": "y"}}, Data: map[string]string{"v": "good"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "caribou", Labels: map[string]string{"p": "y"}}, Data: map[string]string{"v": "bad value"}})
	p := ignoring(mutationPolicy("m.example.com", 0, match(), applyConfiguration(`Object{metadata: Object.metadata{labels: {"v": params.data.v}}}`)))
	p.Spec.ParamKind = configMapKind
	p.Spec.ParamRef = &admissionregistrationv1.ParamRef{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"p": "y"}}, ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)}
	p.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "applied", ValueExpression: "'with ' + params.metadata.name"}}
	// The second parameter object, in name order, makes the second
	// mutation fail.
	p.Spec.Mutations = append(p.Spec.Mutations, jsonPatchExpr(`params.data.v == "bad value" ? [JSONPatch{op: "remove", path: "/spec/missing"}] : []`))
	for range 10 {
		e := mutationEngine(t, testNamespaces, p)
		e.UseParams(src)
		req := podRequest(t, admissionv1.Create, basePod(), nil)
		res := e.Mutate(ctx, req)
		if len(res.Errors) != 1 || res.Patch != nil || res.AuditAnnotations() != nil {
			t.Fatalf("errors %v, patch %v, annotations %v: the failing policy was not undone whole", res.Errors, res.Patch, res.AuditAnnotations())
		}
	}
}

// A parameter kind whose cache has not synced is an error at once, not a
// wait on the request path.
func TestUnsyncedParamsFailAtOnce(t *testing.T) {
	p := validationPolicy("v", admissionv1alpha1.ActionDeny, match(), "true")
	p.Spec.ParamKind = configMapKind
	p.Spec.ParamRef = &admissionregistrationv1.ParamRef{Name: "x", ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction)}
	e := validationEngine(t, testNamespaces, p)
	e.UseParams(unsyncedParams{})
	start := time.Now()
	res := e.Validate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	if len(res.Denials) != 1 || !strings.Contains(res.Denials[0].Message, "not yet synced") {
		t.Fatalf("denials %+v", res.Denials)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("took %v", took)
	}
}

// unsyncedParams serves an informer that never ran.
type unsyncedParams struct{}

func (unsyncedParams) Params(schema.GroupVersionKind) (informers.GenericInformer, apimeta.RESTScope, error) {
	inf := dynamicinformer.NewFilteredDynamicInformer(dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()),
		corev1.SchemeGroupVersion.WithResource("configmaps"), metav1.NamespaceAll, 0, cache.Indexers{}, nil)
	return inf, apimeta.RESTScopeNamespace, nil
}

// What a policy's variables cost is charged to its budget, as the API
// server charges a composition's: variables that each stay under the
// per-call limit but together spend more than the policy's budget are an
// error of the policy, not a free evaluation.
func TestVariablesAreChargedToTheBudget(t *testing.T) {
	var vars []admissionregistrationv1.Variable
	var reads []string
	for i := range 40 {
		name := fmt.Sprintf("v%d", i)
		vars = append(vars, admissionregistrationv1.Variable{Name: name,
			Expression: fmt.Sprintf("object.spec.containers.map(c, c.volumeMounts.map(m, m.name + m.mountPath + '%d'))", i)})
		reads = append(reads, "size(variables."+name+")")
	}
	p := validationPolicy("expensive", admissionv1alpha1.ActionDeny, match(), strings.Join(reads, " + ")+" > 0")
	p.Spec.Variables = vars
	e := validationEngine(t, testNamespaces, p)
	res := e.Validate(ctx, podRequest(t, admissionv1.Create, admissiontest.MountsPod(128, 128), nil))
	if len(res.Denials) != 1 || !strings.Contains(res.Denials[0].Message, "cost budget") {
		t.Fatalf("denials %+v, want the policy's budget spent", res.Denials)
	}
	// The same with one variable is within budget: the error is the sum's.
	p.Spec.Variables, p.Spec.Validations[0].Expression = vars[:1], reads[0]+" > 0"
	res = validationEngine(t, testNamespaces, p).Validate(ctx, podRequest(t, admissionv1.Create, admissiontest.MountsPod(128, 128), nil))
	if len(res.Denials) != 0 {
		t.Fatalf("one variable: denials %+v", res.Denials)
	}
}

// noTypes knows no schema.
type noTypes struct{}

func (noTypes) GetTypeConverter(schema.GroupVersionKind) managedfields.TypeConverter { return nil }

// An applyConfiguration for a kind whose schema is not known (yet) is an
// error of its policy, under its failure policy: never a merge without
// the schema, and never a request let through under Fail.
func TestApplyConfigurationWithoutSchemaFailsClosed(t *testing.T) {
	p := mutationPolicy("m", 0, match(), applyConfiguration(`Object{metadata: Object.metadata{labels: {"a": "b"}}}`))
	e := mutationEngine(t, testNamespaces, p)
	e.UseTypeConverters(noTypes{})
	res := e.Mutate(ctx, podRequest(t, admissionv1.Create, basePod(), nil))
	if !strings.Contains(res.Rejection(), "no schema is known for /v1, Kind=Pod") || res.Patch != nil {
		t.Fatalf("rejection %q, patch %v", res.Rejection(), res.Patch)
	}
}

// The object's CEL values are read natively as the API server's are, also
// when they were built from the JSON (an earlier policy's match condition
// read the object before any decoding): the later applyConfiguration that
// copies containers is merged from maps of strings.
func TestApplyConfigurationAfterAnActivationFromJSON(t *testing.T) {
	first := mutationPolicy("a-labels", 0, match(withConditions(`object.metadata.name == "nope"`)), setLabels(false, "x", "y"))
	second := mutationPolicy("b-copy", 1, match(), applyConfiguration(`Object{spec: Object.spec{initContainers: object.spec.containers}}`))
	e := mutationEngine(t, testNamespaces, first, second)
	req := podRequest(t, admissionv1.Create, basePod(), nil)
	res := e.Mutate(ctx, req)
	if err := res.Err(); err != nil || res.Rejection() != "" {
		t.Fatalf("Err %v, rejection %q", err, res.Rejection())
	}
	got := applyPatch(t, req.Object.Raw, res)
	want := normalise(t, edit(func(p map[string]any) { spec(p)["initContainers"] = spec(p)["containers"] }))
	if !reflect.DeepEqual(any(got), want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}
