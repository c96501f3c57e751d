package restore

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

const (
	owner = "portcullis"
	key   = "example.io/hash"
)

func rendered(t *testing.T) *admissionregistrationv1.ValidatingWebhookConfiguration {
	t.Helper()
	o := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "v", Labels: map[string]string{"app.kubernetes.io/managed-by": owner}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "validate.example.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:9443/validate")},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			MatchConditions:         []admissionregistrationv1.MatchCondition{{Name: "not-ours", Expression: "true"}},
		}},
	}
	hash, err := Digest(o.Webhooks)
	if err != nil {
		t.Fatal(err)
	}
	o.Annotations = map[string]string{key: hash}
	return o
}

// created is a fake API server holding the rendering, created by owner.
func created(t *testing.T) (client.Client, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	t.Helper()
	c := fake.NewClientBuilder().WithReturnManagedFields().Build()
	want := rendered(t)
	if err := c.Create(context.Background(), want.DeepCopy(), client.FieldOwner(owner)); err != nil {
		t.Fatal(err)
	}
	return c, want
}

// Every edit is seen and undone, the second as the first, and a restore
// leaves the operator the one manager. (That a restore which emptied the
// managed fields leaves the API server tracking no later update is the
// real API server's behaviour, not the fake's: the e2e tests edit a
// restored webhook configuration and generated policy again.)
func TestEveryEditIsSeenAndUndone(t *testing.T) {
	ctx := context.Background()
	c, want := created(t)
	hash := want.Annotations[key]
	get := func() *admissionregistrationv1.ValidatingWebhookConfiguration {
		t.Helper()
		var live admissionregistrationv1.ValidatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: "v"}, &live); err != nil {
			t.Fatal(err)
		}
		return &live
	}
	if live := get(); !Current(live, key, hash, owner) {
		t.Fatalf("as created: not current, managed fields %+v", live.ManagedFields)
	}
	for i, edit := range []func(*admissionregistrationv1.ValidatingWebhook){
		func(w *admissionregistrationv1.ValidatingWebhook) {
			w.MatchConditions = append(w.MatchConditions, admissionregistrationv1.MatchCondition{Name: "bypass", Expression: "false"})
		},
		func(w *admissionregistrationv1.ValidatingWebhook) {
			w.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"never": "set"}}
		},
		func(w *admissionregistrationv1.ValidatingWebhook) {
			w.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
		},
	} {
		live := get()
		edit(&live.Webhooks[0])
		if err := c.Update(ctx, live, client.FieldOwner("kubectl-edit")); err != nil {
			t.Fatal(err)
		}
		live = get()
		if Current(live, key, hash, owner) {
			t.Fatalf("edit %d: reads as current, managed fields %+v", i, live.ManagedFields)
		}
		if err := Replace(ctx, c, want, live, owner); err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
		live = get()
		if len(live.Webhooks[0].MatchConditions) != 1 || live.Webhooks[0].ObjectSelector != nil || live.Webhooks[0].FailurePolicy != nil {
			t.Fatalf("edit %d survived: %+v", i, live.Webhooks[0])
		}
		if !Current(live, key, hash, owner) || len(live.ManagedFields) != 1 {
			t.Fatalf("edit %d: not current after the restore, managed fields %+v", i, live.ManagedFields)
		}
	}
}

// An object whose managed fields someone emptied records no later write:
// it is not current, and a restore gives the operator every field again.
func TestEmptiedManagedFieldsAreNotCurrent(t *testing.T) {
	ctx := context.Background()
	c, want := created(t)
	hash := want.Annotations[key]
	var live admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Get(ctx, client.ObjectKey{Name: "v"}, &live); err != nil {
		t.Fatal(err)
	}
	live.ManagedFields = []metav1.ManagedFieldsEntry{{}}
	if err := c.Update(ctx, &live, client.FieldOwner("someone")); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "v"}, &live); err != nil {
		t.Fatal(err)
	}
	if Current(&live, key, hash, owner) {
		t.Fatalf("managed fields %+v read as current", live.ManagedFields)
	}
	if err := Replace(ctx, c, want, &live, owner); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "v"}, &live); err != nil {
		t.Fatal(err)
	}
	if !Current(&live, key, hash, owner) {
		t.Fatalf("after the restore: managed fields %+v", live.ManagedFields)
	}
}

// A restore claims what the operator renders, not the status the API
// server's own controllers write (a policy's type checking).
func TestOwnAllLeavesStatus(t *testing.T) {
	o := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"a": "b"}},
		Spec:       admissionregistrationv1.ValidatingAdmissionPolicySpec{Validations: []admissionregistrationv1.Validation{{Expression: "true"}}},
		Status:     admissionregistrationv1.ValidatingAdmissionPolicyStatus{ObservedGeneration: 1},
	}
	mf, err := ownAll(scheme.Scheme, o, owner)
	if err != nil {
		t.Fatal(err)
	}
	got := string(mf[0].FieldsV1.Raw)
	if want := `{"f:metadata":{"f:labels":{"f:a":{}}},"f:spec":{"f:validations":{}}}`; got != want || mf[0].Manager != owner {
		t.Fatalf("managed fields %s by %s, want %s", got, mf[0].Manager, want)
	}
}
