package admission

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// configMapParams serves ConfigMaps as parameters from a synced informer
// over a fake API server.
type configMapParams struct{ informer informers.GenericInformer }

func newConfigMapParams(t *testing.T, cms ...*corev1.ConfigMap) *configMapParams {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	objs := make([]runtime.Object, len(cms))
	for i := range cms {
		objs[i] = cms[i]
	}
	client := dynamicfake.NewSimpleDynamicClient(scheme, objs...)
	inf := dynamicinformer.NewFilteredDynamicInformer(client, corev1.SchemeGroupVersion.WithResource("configmaps"), metav1.NamespaceAll, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go inf.Informer().RunWithContext(ctx)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if !cache.WaitForCacheSync(sctx.Done(), inf.Informer().HasSynced) {
		t.Fatal("the ConfigMap informer did not sync")
	}
	return &configMapParams{informer: inf}
}

func (c *configMapParams) Params(gvk schema.GroupVersionKind) (informers.GenericInformer, apimeta.RESTScope, error) {
	if gvk != corev1.SchemeGroupVersion.WithKind("ConfigMap") {
		return nil, nil, errNotWatched
	}
	return c.informer, apimeta.RESTScopeNamespace, nil
}

var errNotWatched = errorString("not watched")

type errorString string

func (e errorString) Error() string { return string(e) }

func limits(name, namespace, maxContainers string, labels map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Data: map[string]string{"maxContainers": maxContainers}}
}

var configMapKind = &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"}

func TestValidationParams(t *testing.T) {
	src := newConfigMapParams(t,
		limits("limits", "caribou", "1", map[string]string{"limit": "yes"}),
		limits("strict", "caribou", "0", map[string]string{"limit": "yes"}),
		limits("limits", "moose", "5", nil),
		limits("global", "shared", "3", nil),
	)
	deny, allow := ptr.To(admissionregistrationv1.DenyAction), ptr.To(admissionregistrationv1.AllowAction)
	tests := []struct {
		name        string
		ref         *admissionregistrationv1.ParamRef
		namespace   string
		wantDenials int
		wantError   string
	}{
		{"by name in the request's namespace", &admissionregistrationv1.ParamRef{Name: "limits", ParameterNotFoundAction: deny}, "caribou", 1, ""},
		{"another namespace's parameter", &admissionregistrationv1.ParamRef{Name: "limits", ParameterNotFoundAction: deny}, "moose", 0, ""},
		{"by name in a fixed namespace", &admissionregistrationv1.ParamRef{Name: "global", Namespace: "shared", ParameterNotFoundAction: deny}, "caribou", 0, ""},
		{"by selector, once per parameter", &admissionregistrationv1.ParamRef{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"limit": "yes"}}, ParameterNotFoundAction: deny}, "caribou", 2, ""},
		{"none found, Allow", &admissionregistrationv1.ParamRef{Name: "missing", ParameterNotFoundAction: allow}, "caribou", 0, ""},
		{"none found, Deny", &admissionregistrationv1.ParamRef{Name: "missing", ParameterNotFoundAction: deny}, "caribou", 1, "no params found for policy binding with `Deny` parameterNotFoundAction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validationPolicy("limit", admissionv1alpha1.ActionDeny, match(withConditions("params.data.maxContainers != ''")),
				"size(object.spec.containers) <= int(params.data.maxContainers)")
			p.Spec.ParamKind, p.Spec.ParamRef = configMapKind, tt.ref
			p.Spec.Validations[0].MessageExpression = "'at most ' + params.data.maxContainers + ' containers'"
			e := validationEngine(t, testNamespaces, p)
			e.UseParams(src)
			pod := basePod()
			meta(pod)["namespace"] = tt.namespace
			req := podRequest(t, admissionv1.Create, pod, nil)
			req.Namespace = tt.namespace
			res := e.Validate(ctx, req)
			if len(res.Denials) != tt.wantDenials {
				t.Fatalf("denials %+v, want %d", res.Denials, tt.wantDenials)
			}
			if tt.wantError != "" && !strings.Contains(res.Denials[0].Message, tt.wantError) {
				t.Fatalf("denial %q, want %q", res.Denials[0].Message, tt.wantError)
			}
			if tt.wantError == "" && tt.wantDenials > 0 && !strings.HasPrefix(res.Denials[0].Message, "at most ") {
				t.Fatalf("denial %q", res.Denials[0].Message)
			}
		})
	}

	// A paramKind without a paramRef: evaluated once, params null.
	p := validationPolicy("null-params", admissionv1alpha1.ActionDeny, match(), "params == null")
	p.Spec.ParamKind = configMapKind
	if res := validationEngine(t, testNamespaces, p).Validate(ctx, podRequest(t, admissionv1.Create, basePod(), nil)); len(res.Denials) != 0 || len(res.Matched) != 1 {
		t.Fatalf("params null: %+v", res)
	}
	// A kind the source does not watch is an error of the policy.
	p.Spec.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: "rules.example.com/v1", Kind: "ReplicaLimit"}
	p.Spec.ParamRef = &admissionregistrationv1.ParamRef{Name: "x", ParameterNotFoundAction: allow}
	e := validationEngine(t, testNamespaces, p)
	e.UseParams(src)
	if res := e.Validate(ctx, podRequest(t, admissionv1.Create, basePod(), nil)); len(res.Denials) != 1 || !strings.Contains(res.Denials[0].Message, "failed to configure binding: not watched") {
		t.Fatalf("unwatched kind: %+v", res.Denials)
	}
}

func TestMutationParams(t *testing.T) {
	src := newConfigMapParams(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "team", Namespace: "caribou"}, Data: map[string]string{"team": "antlers"}})
	p := mutationPolicy("team", 0, match(), applyConfiguration(`Object{metadata: Object.metadata{labels: {"team": params.data.team}}}`))
	p.Spec.ParamKind = configMapKind
	p.Spec.ParamRef = &admissionregistrationv1.ParamRef{Name: "team", ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)}
	e := mutationEngine(t, testNamespaces, p)
	e.UseParams(src)
	req := podRequest(t, admissionv1.Create, basePod(), nil)
	res := e.Mutate(ctx, req)
	if res.Rejection() != "" {
		t.Fatal(res.Rejection())
	}
	if got := meta(applyPatch(t, req.Object.Raw, res))["labels"].(map[string]any)["team"]; got != "antlers" {
		t.Fatalf("team = %v", got)
	}
}

func TestParamsCompileErrors(t *testing.T) {
	deny := ptr.To(admissionregistrationv1.DenyAction)
	tests := []struct {
		name      string
		kind      *admissionregistrationv1.ParamKind
		ref       *admissionregistrationv1.ParamRef
		expr      string
		wantField string
		wantText  string
	}{
		{"paramRef without paramKind", nil, &admissionregistrationv1.ParamRef{Name: "x", ParameterNotFoundAction: deny}, "true", "spec.paramRef", "needs a paramKind"},
		{"no apiVersion", &admissionregistrationv1.ParamKind{Kind: "ConfigMap"}, nil, "true", "spec.paramKind.apiVersion", "Required"},
		{"no kind", &admissionregistrationv1.ParamKind{APIVersion: "v1"}, nil, "true", "spec.paramKind.kind", "Required"},
		{"name and selector", configMapKind, &admissionregistrationv1.ParamRef{Name: "x", Selector: &metav1.LabelSelector{}, ParameterNotFoundAction: deny}, "true", "spec.paramRef.name", "mutually exclusive"},
		{"neither name nor selector", configMapKind, &admissionregistrationv1.ParamRef{ParameterNotFoundAction: deny}, "true", "spec.paramRef", "one of name or selector"},
		{"no parameterNotFoundAction", configMapKind, &admissionregistrationv1.ParamRef{Name: "x"}, "true", "spec.paramRef.parameterNotFoundAction", "Required"},
		{"params without paramKind", nil, nil, "params.data.x == 'y'", "spec.validations[0].expression", "undeclared reference to 'params'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validationPolicy("v", admissionv1alpha1.ActionDeny, match(), tt.expr)
			p.Spec.ParamKind, p.Spec.ParamRef = tt.kind, tt.ref
			if errs := ValidateValidationPolicy(testCompiler(), p); !hasFieldError(errs, tt.wantField, tt.wantText) {
				t.Errorf("errors = %v, want one at %s containing %q", errs, tt.wantField, tt.wantText)
			}
		})
	}
}
