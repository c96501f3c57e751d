package approval

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-io/portcullis/internal/authz"
)

// Annotations of an approved object. AuthorAnnotation is the JSON of the
// author's authentication.k8s.io/v1 UserInfo, for people to read too;
// ApprovalAnnotation is "v1:" and the base64 MAC.
const (
	AuthorAnnotation   = "portcullis.io/author"
	ApprovalAnnotation = "portcullis.io/approval"
)

// KeySecretData is the key of the MAC key in its Secret.
const KeySecretData = "key"

// keySize is the MAC key's length: HMAC-SHA256's block-sized key.
const keySize = 32

const version = "v1:"

// ErrNotApproved is wrapped by every Verify failure.
var ErrNotApproved = errors.New("not approved")

// Key signs and verifies approvals.
type Key []byte

// Approve returns the annotations that record author's approval of grants
// on an object of kind in namespace ("" for cluster-scoped kinds).
func (k Key) Approve(kind, namespace string, grants []authz.Grant, author authenticationv1.UserInfo) (map[string]string, error) {
	who, err := json.Marshal(author)
	if err != nil {
		return nil, err
	}
	mac, err := k.mac(kind, namespace, string(who), grants)
	if err != nil {
		return nil, err
	}
	return map[string]string{AuthorAnnotation: string(who), ApprovalAnnotation: version + base64.StdEncoding.EncodeToString(mac)}, nil
}

// Verify returns the author recorded in annotations when they approve
// grants on an object of kind in namespace, and an error wrapping
// ErrNotApproved that says why not otherwise. An object that grants
// nothing (a Deny or DryRun AccessPolicy) needs no approval: it is served
// however it was written, so a Deny never fails open for want of one.
func (k Key) Verify(kind, namespace string, grants []authz.Grant, annotations map[string]string) (authenticationv1.UserInfo, error) {
	var author authenticationv1.UserInfo
	if len(grants) == 0 {
		return author, nil
	}
	who, stamp := annotations[AuthorAnnotation], annotations[ApprovalAnnotation]
	if who == "" || stamp == "" {
		return author, fmt.Errorf("%w: it has no %s annotation, so it was not written through Portcullis's admission check", ErrNotApproved, ApprovalAnnotation)
	}
	enc, ok := strings.CutPrefix(stamp, version)
	got, err := base64.StdEncoding.DecodeString(enc)
	if !ok || err != nil {
		return author, fmt.Errorf("%w: its %s annotation is malformed", ErrNotApproved, ApprovalAnnotation)
	}
	want, err := k.mac(kind, namespace, who, grants)
	if err != nil {
		return author, err
	}
	if !hmac.Equal(got, want) {
		return author, fmt.Errorf("%w: its %s annotation does not match what it grants (it changed since its author was checked, or was not written by Portcullis)", ErrNotApproved, ApprovalAnnotation)
	}
	if err := json.Unmarshal([]byte(who), &author); err != nil {
		return author, fmt.Errorf("%w: its %s annotation is malformed: %v", ErrNotApproved, AuthorAnnotation, err)
	}
	return author, nil
}

// mac is HMAC-SHA256 over the version, kind, namespace, author and the
// digest of the grants, each framed by its length so that no two inputs
// run together.
func (k Key) mac(kind, namespace, author string, grants []authz.Grant) ([]byte, error) {
	if len(k) == 0 {
		return nil, errors.New("no approval key")
	}
	digest, err := Digest(grants)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, k)
	for _, part := range []string{version, kind, namespace, author, string(digest)} {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return h.Sum(nil), nil
}

// Digest is the SHA-256 of the grants in order: the readings that produce
// them are deterministic, so the webhook and the controllers agree.
func Digest(grants []authz.Grant) ([]byte, error) {
	type wire struct {
		R *authorizationv1.ResourceAttributes    `json:"r,omitempty"`
		N *authorizationv1.NonResourceAttributes `json:"n,omitempty"`
	}
	list := make([]wire, len(grants))
	for i, g := range grants {
		list[i] = wire{R: g.Resource, N: g.NonResource}
	}
	b, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// Carry reports whether an update may keep the old object's approval:
// the grants did not change and the old approval verifies. An update of
// metadata alone (labels, finalizers, by the operator or anyone) then
// keeps its author.
func (k Key) Carry(kind, namespace string, oldGrants, newGrants []authz.Grant, oldAnnotations map[string]string) bool {
	od, err1 := Digest(oldGrants)
	nd, err2 := Digest(newGrants)
	if err1 != nil || err2 != nil || !hmac.Equal(od, nd) {
		return false
	}
	_, err := k.Verify(kind, namespace, oldGrants, oldAnnotations)
	return err == nil
}

// SeedKey returns the key from the Secret ns/name, creating the Secret
// with a new random key when it does not exist: the first replica to
// start makes it, the others read it.
func SeedKey(ctx context.Context, c client.Client, ns, name string) (Key, error) {
	var s corev1.Secret
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		key := make([]byte, keySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		s = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "portcullis"}},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{KeySecretData: key},
		}
		if err := c.Create(ctx, &s); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating the approval key Secret %s/%s: %w", ns, name, err)
		}
		err = c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the approval key Secret %s/%s: %w", ns, name, err)
	}
	key := s.Data[KeySecretData]
	if len(key) < keySize {
		return nil, fmt.Errorf("the approval key Secret %s/%s: key %q holds %d bytes, want %d", ns, name, KeySecretData, len(key), keySize)
	}
	return Key(key), nil
}
