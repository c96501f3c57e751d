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
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

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

// Object is what an approval is for: an object of Kind in Namespace (""
// for cluster-scoped kinds) whose Spec, as served, gives Grants. The
// approval covers the whole spec, not only the grants: who receives them,
// which Secret holds the token, which issuer is trusted are as much what
// the author was checked for.
type Object struct {
	Kind, Namespace string
	Spec            any
	Grants          []authz.Grant
}

// Needed reports whether o needs an approval: an object that grants
// nothing (a Deny or DryRun AccessPolicy) does not, so it is served
// however it was written, and a Deny never fails open for want of one.
func (o Object) Needed() bool { return len(o.Grants) > 0 }

// Approve returns the annotations that record author's approval of o.
func (k Key) Approve(o Object, author authenticationv1.UserInfo) (map[string]string, error) {
	who, err := json.Marshal(author)
	if err != nil {
		return nil, err
	}
	mac, err := k.mac(o, string(who))
	if err != nil {
		return nil, err
	}
	return map[string]string{AuthorAnnotation: string(who), ApprovalAnnotation: version + base64.StdEncoding.EncodeToString(mac)}, nil
}

// Verify returns the author recorded in annotations when they approve o
// as it is, nil when o needs no approval, and an error wrapping
// ErrNotApproved that says why not otherwise.
func (k Key) Verify(o Object, annotations map[string]string) (*authenticationv1.UserInfo, error) {
	if !o.Needed() {
		return nil, nil
	}
	who, stamp := annotations[AuthorAnnotation], annotations[ApprovalAnnotation]
	if who == "" || stamp == "" {
		return nil, fmt.Errorf("%w: it has no %s annotation, so it was not written through Portcullis's admission check", ErrNotApproved, ApprovalAnnotation)
	}
	enc, ok := strings.CutPrefix(stamp, version)
	got, err := base64.StdEncoding.DecodeString(enc)
	if !ok || err != nil {
		return nil, fmt.Errorf("%w: its %s annotation is malformed", ErrNotApproved, ApprovalAnnotation)
	}
	want, err := k.mac(o, who)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(got, want) {
		return nil, fmt.Errorf("%w: its %s annotation is not for its spec as it is (the spec changed since its author was checked, or the annotation was not written by Portcullis)", ErrNotApproved, ApprovalAnnotation)
	}
	var author authenticationv1.UserInfo
	if err := json.Unmarshal([]byte(who), &author); err != nil {
		return nil, fmt.Errorf("%w: its %s annotation is malformed: %v", ErrNotApproved, AuthorAnnotation, err)
	}
	return &author, nil
}

// mac is HMAC-SHA256 over the version, kind, namespace, author and the
// digest of the spec, each framed by its length so that no two inputs run
// together.
func (k Key) mac(o Object, author string) ([]byte, error) {
	if len(k) == 0 {
		return nil, errors.New("no approval key")
	}
	digest, err := Digest(o.Spec)
	if err != nil {
		return nil, err
	}
	h := hmac.New(sha256.New, k)
	for _, part := range []string{version, o.Kind, o.Namespace, author, string(digest)} {
		fmt.Fprintf(h, "%d:%s", len(part), part)
	}
	return h.Sum(nil), nil
}

// Digest is the SHA-256 of the spec's JSON: encoding/json writes a typed
// spec the same way whether it was decoded from an admission review or
// read from the API server, map keys sorted.
func Digest(spec any) ([]byte, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// SameSpec reports whether an update from old to o leaves the object as
// approvals see it: same kind, namespace and spec. Such an update
// (labels, finalizers, by the operator or anyone) may keep old's approval
// when that verifies; any other is checked again, as the API server checks
// every change of a RoleBinding for escalation.
func SameSpec(old, o Object) bool {
	od, err1 := Digest(old.Spec)
	nd, err2 := Digest(o.Spec)
	return err1 == nil && err2 == nil && hmac.Equal(od, nd) && old.Kind == o.Kind && old.Namespace == o.Namespace
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

// Changed passes the updates that change an object's approval, for the
// controllers' watches: a re-approval, an update that only stamps the
// object again, is then served at once, not at the next resync.
var Changed = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return true
	}
	o, n := e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()
	return o[AuthorAnnotation] != n[AuthorAnnotation] || o[ApprovalAnnotation] != n[ApprovalAnnotation]
}}

// keyRecheck is how often a running operator looks at its key's Secret.
const keyRecheck = 30 * time.Second

// KeyWatch is a manager Runnable, on every replica, that stops the
// operator when the key's Secret changes or disappears: replicas holding
// different keys would each refuse the others' approvals, so a TokenReview
// would answer differently by replica. Restarted, the replica reads the
// key again (SeedKey makes a new one if it is gone, and every approval
// made under the old one is then refused).
type KeyWatch struct {
	Client          client.Reader
	Namespace, Name string
	Key             Key
}

// Start implements manager.Runnable.
func (w *KeyWatch) Start(ctx context.Context) error {
	t := time.NewTicker(keyRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var s corev1.Secret
		err := w.Client.Get(ctx, client.ObjectKey{Namespace: w.Namespace, Name: w.Name}, &s)
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Errorf("the approval key Secret %s/%s was deleted: stopping, to start again with a key every replica shares", w.Namespace, w.Name)
		case err != nil:
			continue // the API server is away: keep the key in use
		case !hmac.Equal(s.Data[KeySecretData], w.Key):
			return fmt.Errorf("the approval key in Secret %s/%s changed: stopping, to start again with it", w.Namespace, w.Name)
		}
	}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every
// replica verifies approvals.
func (w *KeyWatch) NeedLeaderElection() bool { return false }
