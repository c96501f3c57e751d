package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/internal/devenv"
)

// What was written past the escalation check is not served. With the
// operator down and its own-kinds webhook configurations deleted, an admin
// of the API server (or anyone with RBAC on the kinds) can write objects
// that no webhook sees: a StaticToken with a forged approval, an approved
// StaticToken changed to grant system:masters, an Allow AccessPolicy with
// none. When the operator is back it serves none of them (Ready=False,
// Unapproved) and puts the configurations back, while a Deny policy
// written the same way is served: a Deny never fails open.
func TestUnapprovedObjectsAreNotServed(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	state := t.TempDir()
	e, err := devenv.Start(ctx, devenv.Options{StateDir: state, WithoutControllerManager: true, DecisionLog: decisionLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	if err := e.Apply(ctx, []byte(`
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: approved}
spec: {user: {username: approved}, secretRef: {name: approved-token}}
`)); err != nil {
		t.Fatal(err)
	}
	token, err := e.StaticToken(ctx, "approved", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(state, "webhook-certs", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, ctx, "the approved token authenticates", func(ctx context.Context) (bool, error) {
		u, err := tokenReview(ctx, caPEM, e.WebhookURL, token, e.APIServerClient)
		return err == nil && u == "approved", err
	})

	// The operator goes down and its own-kinds webhooks with it.
	if err := e.Primary().Stop(); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: app.ApprovalWebhookConfiguration}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: app.OwnKindsWebhookConfiguration}},
	} {
		if err := e.Client.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	// Past any webhook now: a forged approval, an approved token turned
	// into system:masters, and two policies without an approval.
	var st authnv1alpha1.StaticToken
	if err := e.Client.Get(ctx, client.ObjectKey{Name: "approved"}, &st); err != nil {
		t.Fatal(err)
	}
	st.Spec.User.Groups = []string{"system:masters"}
	if err := e.Client.Update(ctx, &st); err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, []byte(fmt.Sprintf(`
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata:
  name: forged
  annotations: {portcullis.io/author: %q, portcullis.io/approval: %q}
spec: {user: {username: forged}, secretRef: {name: forged-token}}
---
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: unapproved-allow}
spec:
  effect: Allow
  subjects: [{kind: User, name: forged}]
  rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
---
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: unapproved-deny}
spec:
  effect: Deny
  subjects: [{kind: User, name: forged}]
  rules: [{apiGroups: [""], resources: ["secrets"], verbs: ["get"]}]
`, st.Annotations["portcullis.io/author"], st.Annotations["portcullis.io/approval"]))); err != nil {
		t.Fatal(err)
	}

	if _, err := e.StartReplica(ctx); err != nil {
		t.Fatal(err)
	}
	ready := func(obj client.Object) *metav1.Condition {
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return nil
		}
		switch o := obj.(type) {
		case *authnv1alpha1.StaticToken:
			if o.Status.ObservedGeneration == o.Generation {
				return meta.FindStatusCondition(o.Status.Conditions, authnv1alpha1.ConditionReady)
			}
		case *authzv1alpha1.AccessPolicy:
			if o.Status.ObservedGeneration == o.Generation {
				return meta.FindStatusCondition(o.Status.Conditions, authzv1alpha1.ConditionReady)
			}
		}
		return nil
	}
	for _, tc := range []struct {
		obj    client.Object
		status metav1.ConditionStatus
		reason string
	}{
		{&authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "approved"}}, metav1.ConditionFalse, authnv1alpha1.ReasonUnapproved},
		{&authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "forged"}}, metav1.ConditionFalse, authnv1alpha1.ReasonUnapproved},
		{&authzv1alpha1.AccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: "unapproved-allow"}}, metav1.ConditionFalse, authzv1alpha1.ReasonUnapproved},
		{&authzv1alpha1.AccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: "unapproved-deny"}}, metav1.ConditionTrue, authzv1alpha1.ReasonLoaded},
	} {
		eventually(t, ctx, fmt.Sprintf("%s %s is Ready=%s/%s", tc.obj.GetObjectKind().GroupVersionKind().Kind, tc.obj.GetName(), tc.status, tc.reason), func(context.Context) (bool, error) {
			c := ready(tc.obj)
			if c == nil {
				return false, nil
			}
			return c.Status == tc.status && c.Reason == tc.reason, fmt.Errorf("Ready=%s/%s: %s", c.Status, c.Reason, c.Message)
		})
	}
	// The token that now claims system:masters authenticates as no one.
	eventually(t, ctx, "the changed token no longer authenticates", func(ctx context.Context) (bool, error) {
		u, err := tokenReview(ctx, caPEM, e.WebhookURL, token, e.APIServerClient)
		return err == nil && u == "", fmt.Errorf("authenticated as %q (%v)", u, err)
	})
	// The configurations are back, and with them the check: the forged
	// token applied again through them is approved for its real author.
	eventually(t, ctx, "the approval configuration is restored", func(ctx context.Context) (bool, error) {
		var m admissionregistrationv1.MutatingWebhookConfiguration
		return e.Client.Get(ctx, client.ObjectKey{Name: app.ApprovalWebhookConfiguration}, &m) == nil, nil
	})
	// Approved again as docs/operations.md says: an annotation, by an
	// admin, with the spec left alone; served at once, not at a resync.
	for _, name := range []string{"forged", "approved"} {
		if _, stderr, err := e.ControlPlane.Kubectl(ctx, "", "annotate", "statictoken", name, "portcullis.io/reapproved=1", "--overwrite"); err != nil {
			t.Fatalf("annotate %s: %v\n%s", name, err, stderr)
		}
	}
	for _, name := range []string{"forged", "approved"} {
		eventually(t, ctx, name+" is approved again", func(ctx context.Context) (bool, error) {
			c := ready(&authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: name}})
			return c != nil && c.Reason == authnv1alpha1.ReasonLoaded, fmt.Errorf("%v", c)
		})
	}
}
