package approval

import (
	"errors"
	"maps"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/portcullis-io/portcullis/internal/authz"
)

type spec struct {
	User      string            `json:"user"`
	SecretRef string            `json:"secretRef"`
	Extra     map[string]string `json:"extra,omitempty"`
}

func object(kind, ns string, s spec) Object {
	return Object{Kind: kind, Namespace: ns, Spec: s, Grants: []authz.Grant{
		{Resource: &authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users", Name: s.User}},
	}}
}

// An approval verifies for exactly the kind, namespace, author and spec it
// was made for, under its key: a spec that grants the same but to another
// token, subject or issuer is not approved.
func TestApproveVerify(t *testing.T) {
	key := Key("0123456789abcdef0123456789abcdef")
	author := authenticationv1.UserInfo{Username: "alice", Groups: []string{"dev"}, Extra: map[string]authenticationv1.ExtraValue{"team": {"a"}}}
	base := spec{User: "bob", SecretRef: "bob-token", Extra: map[string]string{"b": "2", "a": "1"}}
	ann, err := key.Approve(object("StaticToken", "ns", base), author)
	if err != nil {
		t.Fatal(err)
	}
	// The same spec built anew (map order included) verifies.
	same := spec{User: "bob", SecretRef: "bob-token", Extra: map[string]string{"a": "1", "b": "2"}}
	got, err := key.Verify(object("StaticToken", "ns", same), ann)
	if err != nil || got == nil || got.Username != "alice" || len(got.Groups) != 1 || got.Extra["team"][0] != "a" {
		t.Fatalf("Verify = %+v, %v; want alice", got, err)
	}
	forged := maps.Clone(ann)
	forged[AuthorAnnotation] = `{"username":"system:admin","groups":["system:masters"]}`
	malformed := maps.Clone(ann)
	malformed[ApprovalAnnotation] = "v1:not base64!"
	for _, tc := range []struct {
		name string
		key  Key
		o    Object
		ann  map[string]string
	}{
		{"another identity granted", key, object("StaticToken", "ns", spec{User: "system:admin", SecretRef: "bob-token"}), ann},
		{"the same identity on another Secret", key, object("StaticToken", "ns", spec{User: "bob", SecretRef: "mallory-token", Extra: base.Extra}), ann},
		{"another kind", key, object("JWTAuthenticator", "ns", base), ann},
		{"another namespace", key, object("StaticToken", "other", base), ann},
		{"another key", Key("fedcba9876543210fedcba9876543210"), object("StaticToken", "ns", base), ann},
		{"another author", key, object("StaticToken", "ns", base), forged},
		{"malformed", key, object("StaticToken", "ns", base), malformed},
		{"no annotations", key, object("StaticToken", "ns", base), nil},
	} {
		if _, err := tc.key.Verify(tc.o, tc.ann); !errors.Is(err, ErrNotApproved) {
			t.Errorf("%s: Verify = %v, want ErrNotApproved", tc.name, err)
		}
	}
	// What grants nothing needs no approval.
	if a, err := key.Verify(Object{Kind: "AccessPolicy", Spec: base}, nil); err != nil || a != nil {
		t.Errorf("no grants: %v, %v", a, err)
	}
	// An update keeps the approval only while the spec stays the same and
	// the old approval verifies.
	carry := func(old, o Object, ann map[string]string) bool {
		a, err := key.Verify(old, ann)
		return SameSpec(old, o) && err == nil && a != nil
	}
	if !carry(object("StaticToken", "ns", base), object("StaticToken", "ns", same), ann) {
		t.Error("same spec: the approval is not carried")
	}
	if carry(object("StaticToken", "ns", base), object("StaticToken", "ns", spec{User: "bob", SecretRef: "mallory-token"}), ann) {
		t.Error("new Secret: the old approval is carried")
	}
	if SameSpec(object("StaticToken", "ns", base), object("StaticToken", "other", base)) || SameSpec(object("StaticToken", "ns", base), object("JWTAuthenticator", "ns", base)) {
		t.Error("another namespace or kind is the same spec")
	}
	if carry(object("StaticToken", "ns", base), object("StaticToken", "ns", base), forged) {
		t.Error("a forged approval is carried")
	}
	if carry(Object{Kind: "AccessPolicy", Spec: base}, Object{Kind: "AccessPolicy", Spec: base}, nil) {
		t.Error("an approval that was never made is carried")
	}
	if _, err := Key(nil).Approve(object("StaticToken", "ns", base), author); err == nil {
		t.Error("approved without a key")
	}
}
