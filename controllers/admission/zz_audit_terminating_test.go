package admission

import (
	"context"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	reportsv1alpha2 "github.com/portcullis-io/portcullis/api/wgpolicyk8s/v1alpha2"
	engine "github.com/portcullis-io/portcullis/internal/admission"
)

func TestZZTerminatingNamespaceFailsWholeAudit(t *testing.T) {
	compiler, _ := engine.NewCompiler()
	rule := []admissionv1alpha1.ResourceRule{{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}}
	p := &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "uid-p", Generation: 1},
		Spec: admissionv1alpha1.ValidationPolicySpec{Match: admissionv1alpha1.Match{Resources: rule},
			Validations: []admissionv1alpha1.Validation{{Expression: "false", Message: "no"}}}}
	ns := engine.Namespaces{}
	for _, n := range []string{"live", "dying"} {
		ns[n] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n, Labels: map[string]string{corev1.LabelMetadataName: n}}}
	}
	pair := engine.NewEngines(ns, nil)
	c0, _ := engine.CompileValidationPolicy(compiler, p)
	pair.Validations.Set(p.Name, c0)
	pair.MarkReady()
	pod := func(n string) runtime.Object {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": "p", "namespace": n, "uid": "u-" + n}, "spec": map[string]any{}}}
	}
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	_ = admissionv1alpha1.AddToScheme(scheme)
	_ = reportsv1alpha2.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(p).WithStatusSubresource(p).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if obj.GetNamespace() == "dying" {
				return apierrors.NewForbidden(schema.GroupResource{Group: "wgpolicyk8s.io", Resource: "policyreports"}, obj.GetName(),
					&errString{"unable to create new content in namespace dying because it is being terminated"})
			}
			return cl.Create(ctx, obj, opts...)
		}}).Build()
	podsGVR := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{podsGVR: "PodList"}, pod("live"), pod("dying"))
	mapper := apimeta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, apimeta.RESTScopeNamespace)
	g, _ := auditViolations(nil)
	a := &auditor{client: c, validations: pair.Validations, now: time.Now, violations: g,
		deps: AuditDeps{Namespaces: ns, Dynamic: dyn, Mapper: mapper, Exceptions: pair.Validation}}
	_, err := a.run(context.Background(), AuditSettings{MaxResults: 1000})
	t.Logf("run error: %v", err)
	var got admissionv1alpha1.ValidationPolicy
	_ = c.Get(context.Background(), client.ObjectKey{Name: "p"}, &got)
	t.Logf("status.audit: %+v", got.Status.Audit)
	if err != nil {
		t.Errorf("one terminating namespace fails the whole audit (retried every minute, status and metric never written)")
	}
}

type errString struct{ s string }

func (e *errString) Error() string { return e.s }
