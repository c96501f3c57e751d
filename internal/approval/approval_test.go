package approval

import (
	"errors"
	"maps"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/portcullis-io/portcullis/internal/authz"
)

func grants(names ...string) []authz.Grant {
	var out []authz.Grant
	for _, n := range names {
		out = append(out, authz.Grant{Resource: &authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users", Name: n}})
	}
	return out
}

// An approval verifies for exactly the kind, namespace, author and grants
// it was made for, under its key.
func TestApproveVerify(t *testing.T) {
	key := Key("0123456789abcdef0123456789abcdef")
	author := authenticationv1.UserInfo{Username: "alice", Groups: []string{"dev"}, Extra: map[string]authenticationv1.ExtraValue{"team": {"a"}}}
	ann, err := key.Approve("StaticToken", "ns", grants("bob"), author)
	if err != nil {
		t.Fatal(err)
	}
	got, err := key.Verify("StaticToken", "ns", grants("bob"), ann)
	if err != nil || got.Username != "alice" || len(got.Groups) != 1 || got.Extra["team"][0] != "a" {
		t.Fatalf("Verify = %+v, %v; want alice", got, err)
	}
	forged := maps.Clone(ann)
	forged[AuthorAnnotation] = `{"username":"system:admin","groups":["system:masters"]}`
	malformed := maps.Clone(ann)
	malformed[ApprovalAnnotation] = "v1:not base64!"
	for _, tc := range []struct {
		name, kind, ns string
		key            Key
		grants         []authz.Grant
		ann            map[string]string
	}{
		{"another identity granted", "StaticToken", "ns", key, grants("system:admin"), ann},
		{"one more grant", "StaticToken", "ns", key, grants("bob", "carol"), ann},
		{"another kind", "JWTAuthenticator", "ns", key, grants("bob"), ann},
		{"another namespace", "StaticToken", "other", key, grants("bob"), ann},
		{"another key", "StaticToken", "ns", Key("fedcba9876543210fedcba9876543210"), grants("bob"), ann},
		{"another author", "StaticToken", "ns", key, grants("bob"), forged},
		{"malformed", "StaticToken", "ns", key, grants("bob"), malformed},
		{"no annotations", "StaticToken", "ns", key, grants("bob"), nil},
	} {
		if _, err := tc.key.Verify(tc.kind, tc.ns, tc.grants, tc.ann); !errors.Is(err, ErrNotApproved) {
			t.Errorf("%s: Verify = %v, want ErrNotApproved", tc.name, err)
		}
	}
	// What grants nothing needs no approval.
	if _, err := key.Verify("AccessPolicy", "", nil, nil); err != nil {
		t.Errorf("no grants: %v", err)
	}
	// An update keeps the approval only while the grants stay the same.
	if !key.Carry("StaticToken", "ns", grants("bob"), grants("bob"), ann) {
		t.Error("same grants: the approval is not carried")
	}
	if key.Carry("StaticToken", "ns", grants("bob"), grants("system:admin"), ann) {
		t.Error("new grants: the old approval is carried")
	}
	if key.Carry("StaticToken", "ns", grants("bob"), grants("bob"), forged) {
		t.Error("a forged approval is carried")
	}
	if _, err := Key(nil).Approve("StaticToken", "ns", grants("bob"), author); err == nil {
		t.Error("approved without a key")
	}
}

// The digest depends on the order and content of the grants.
func TestDigest(t *testing.T) {
	a, _ := Digest(grants("x", "y"))
	b, _ := Digest(grants("y", "x"))
	c, _ := Digest(grants("x", "y"))
	if string(a) == string(b) || string(a) != string(c) {
		t.Error("the digest does not follow the grants")
	}
	n, _ := Digest([]authz.Grant{{NonResource: &authorizationv1.NonResourceAttributes{Verb: "get", Path: "/x"}}})
	r, _ := Digest([]authz.Grant{{Resource: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "/x"}}})
	if string(n) == string(r) {
		t.Error("a URL grant digests like a resource grant")
	}
}
