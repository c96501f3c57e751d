package crds

import (
	"context"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// The Policy Reports CRDs are foreign: created when absent, and one
// another tool installed is left exactly as it is.
func TestForeignCRDsAreCreatedOnlyWhenAbsent(t *testing.T) {
	all, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	foreign := Foreign(all)
	if len(foreign) != 2 {
		t.Fatalf("foreign CRDs %d, want the two Policy Reports CRDs", len(foreign))
	}
	for _, c := range foreign {
		if c.Spec.Group != "wgpolicyk8s.io" {
			t.Errorf("foreign CRD %s of group %s", c.Name, c.Spec.Group)
		}
	}
	scheme := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	theirs := foreign[0].DeepCopy()
	theirs.Labels = map[string]string{"owner": "kyverno"}
	theirs.Spec.Versions = theirs.Spec.Versions[:1]
	theirs.Spec.Versions[0].Name = "v1alpha2"
	established := func(o client.Object) {
		crd := o.(*apiextensionsv1.CustomResourceDefinition)
		crd.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue, LastTransitionTime: metav1.Now()}}
	}
	established(theirs)
	var created []string
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(theirs).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
			created = append(created, o.GetName())
			established(o) // the API server establishes it
			return c.Create(ctx, o, opts...)
		},
	}).Build()
	if err := CreateIfAbsent(context.Background(), c, foreign); err != nil {
		t.Fatal(err)
	}
	if len(created) != 1 || created[0] != foreign[1].Name {
		t.Errorf("created %v, want only %s", created, foreign[1].Name)
	}
	var got apiextensionsv1.CustomResourceDefinition
	if err := c.Get(context.Background(), client.ObjectKey{Name: theirs.Name}, &got); err != nil {
		t.Fatal(err)
	}
	if got.Labels["owner"] != "kyverno" || len(got.Spec.Versions) != 1 {
		t.Errorf("the existing CRD was changed: %+v", got.ObjectMeta.Labels)
	}
}
