package ownkinds

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/approval"
	"github.com/portcullis-io/portcullis/internal/authn"
)

// An update that leaves an unapproved object's spec alone is admitted (a
// deletion must not hang on its finalizers), but keeps its approval
// annotations as they were: a stamp made elsewhere, for another object
// with the same spec or by a call of the webhook that did not come from
// the API server, is not attached to it on the way, and the Validator
// then sees none.
func TestUnchangedUnapprovedUpdateKeepsItsApproval(t *testing.T) {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = authnv1alpha1.AddToScheme(s)
	// The API server's answers: only system:masters holds anything.
	c := fake.NewClientBuilder().WithScheme(s).WithInterceptorFuncs(interceptor.Funcs{
		Create: func(_ context.Context, _ client.WithWatch, obj client.Object, _ ...client.CreateOption) error {
			sar := obj.(*authorizationv1.SubjectAccessReview)
			sar.Status.Allowed = slices.Contains(sar.Spec.Groups, "system:masters")
			return nil
		},
	}).Build()
	key := approval.Key([]byte("0123456789abcdef0123456789abcdef"))
	dec := NewDecoder(s)
	comp := authenticationcel.NewDefaultCompiler()
	ap := &Approver{Decoder: dec, AuthnCompiler: comp, Client: c, Key: key}
	val := &Validator{Decoder: dec, AuthnCompiler: comp, Key: key}

	spec := authnv1alpha1.StaticTokenSpec{
		User:      authnv1alpha1.UserInfo{Username: "root", Groups: []string{"system:masters"}},
		SecretRef: authnv1alpha1.SecretKeySelector{Name: "t", Key: "token"},
	}
	stamp, err := key.Approve(approval.Object{Kind: "StaticToken", Spec: spec, Grants: authn.Impersonations(spec.User)},
		authenticationv1.UserInfo{Username: "kubernetes-admin", Groups: []string{"system:masters"}})
	if err != nil {
		t.Fatal(err)
	}
	obj := func(ann map[string]string) []byte {
		b, _ := json.Marshal(authnv1alpha1.StaticToken{TypeMeta: metav1.TypeMeta{APIVersion: authnv1alpha1.GroupVersion.String(), Kind: "StaticToken"},
			ObjectMeta: metav1.ObjectMeta{Name: "dormant", Annotations: ann}, Spec: spec})
		return b
	}
	withStamp := map[string]string{"team": "x"}
	for k, v := range stamp {
		withStamp[k] = v
	}
	oldRaw, newRaw := obj(map[string]string{"team": "x"}), obj(withStamp)
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "x", Operation: admissionv1.Update, UserInfo: authenticationv1.UserInfo{Username: "mallory", Groups: []string{"system:authenticated"}},
		Kind:   metav1.GroupVersionKind{Group: authnv1alpha1.GroupVersion.Group, Version: "v1alpha1", Kind: "StaticToken"},
		Object: runtime.RawExtension{Raw: newRaw}, OldObject: runtime.RawExtension{Raw: oldRaw},
	}}
	resp := ap.Handle(context.Background(), req)
	if !resp.Allowed || len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "stays unapproved") {
		t.Fatalf("approver: allowed %v, warnings %v, %+v", resp.Allowed, resp.Warnings, resp.Result)
	}
	patch, _ := json.Marshal(resp.Patches)
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatal(err)
	}
	admitted, err := p.Apply(newRaw)
	if err != nil {
		t.Fatal(err)
	}
	var st authnv1alpha1.StaticToken
	if err := json.Unmarshal(admitted, &st); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Annotations[approval.ApprovalAnnotation]; ok || st.Annotations["team"] != "x" {
		t.Fatalf("admitted annotations %v: want the stamp gone and the rest kept", st.Annotations)
	}
	req.Object.Raw = admitted
	if r := val.Handle(context.Background(), req); !r.Allowed {
		t.Fatalf("validator: %+v", r.Result)
	}
	if _, err := key.Verify(approval.Object{Kind: "StaticToken", Spec: st.Spec, Grants: authn.Impersonations(st.Spec.User)}, st.Annotations); err == nil {
		t.Error("the admitted object verifies as approved")
	}
}
