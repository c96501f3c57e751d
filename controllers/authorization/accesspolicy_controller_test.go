package authorization

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	authorizationcel "k8s.io/apiserver/pkg/authorization/cel"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/authz"
	"github.com/portcullis-io/portcullis/internal/gate"
)

// synced is a cache that has synced.
type synced struct{}

func (synced) WaitForCacheSync(context.Context) bool { return true }

// TestReadyAfterDeleteWhileLoading: a policy listed by the readiness gate
// and deleted before its reconcile is forgotten by the reconciler, never
// compiled; the phase still becomes ready, serving the one that remains.
func TestReadyAfterDeleteWhileLoading(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := authzv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	deny := func(name string) *authzv1alpha1.AccessPolicy {
		return &authzv1alpha1.AccessPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: authzv1alpha1.AccessPolicySpec{
				Effect:      authzv1alpha1.EffectDeny,
				Enforcement: authzv1alpha1.EnforcementEnforce,
				Subjects:    []authzv1alpha1.Subject{{Kind: authzv1alpha1.SubjectUser, Name: name}},
				Rules:       []authzv1alpha1.Rule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"delete"}}},
			},
		}
	}
	kept, deleted := deny("kept"), deny("deleted")
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(kept, deleted).WithStatusSubresource(kept, deleted).Build()

	engine := authz.NewEngine(nil, nil)
	registry := authz.NewRegistry(engine)
	r := &AccessPolicyReconciler{Client: c, Registry: registry, Compiler: authorizationcel.NewDefaultCompiler(), Leader: gate.NewLeader(c)}

	listed, ready := make(chan struct{}), make(chan struct{})
	gc := interceptor.NewClient(c.(client.WithWatch), interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			err := c.List(ctx, list, opts...)
			close(listed)
			return err
		},
	})
	g := gate.NewReady("authorization", gc, synced{}, func() { registry.MarkReady(); close(ready) })
	g.Track(func() client.ObjectList { return &authzv1alpha1.AccessPolicyList{} }, registry.Has)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 1)
	go func() { errs <- g.Start(ctx) }()
	<-listed

	reconcileOne := func(name string) {
		t.Helper()
		if _, err := r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}); err != nil {
			t.Fatalf("reconcile %s: %v", name, err)
		}
	}
	reconcileOne("kept")
	if err := c.Delete(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	reconcileOne("deleted") // NotFound: the registry forgets it
	select {
	case <-ready:
	case err := <-errs:
		t.Fatalf("the gate stopped without getting ready: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the phase never got ready: the gate waits for a policy deleted while loading")
	}
	if !engine.Ready() {
		t.Fatal("ready, but the engine's snapshot is not")
	}
	if !registry.Has("kept") || registry.Has("deleted") {
		t.Errorf("registry has kept=%v deleted=%v; want true, false", registry.Has("kept"), registry.Has("deleted"))
	}
}
