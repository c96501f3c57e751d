// Package restore keeps an object the operator renders as it renders it,
// the one mechanism of the controllers that generate objects (the webhook
// configurations, the native admission policies): an object is current
// when it carries the digest of its rendering and no other manager has
// written it since, and is otherwise replaced whole.
//
// Comparing contents instead would need the API server's defaults for the
// kind (which only k8s.io/kubernetes has), and a server-side apply would
// take back only the fields the operator sets: an objectSelector or a
// matchCondition someone added would stay theirs.
package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

// Digest is the digest of v's JSON encoding, for an annotation that says
// which rendering an object is.
func Digest(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12]), nil
}

// Edited reports whether a manager other than owner wrote o (its spec or
// metadata; a status subresource does not count) since owner last
// replaced it: its managed fields name another manager. A digest alone
// cannot tell, as an edit leaves the annotation as it was.
func Edited(o client.Object, owner string) bool {
	for _, mf := range o.GetManagedFields() {
		if mf.Manager != owner && mf.Subresource == "" {
			return true
		}
	}
	return false
}

// Current reports whether existing is the rendering whose digest is hash
// (in annotation key), written last by owner: its managed fields name
// owner and no other manager. An object with no managed fields at all is
// not current, as the API server then tracks no later write (see Replace).
func Current(existing client.Object, key, hash, owner string) bool {
	return existing != nil && hash != "" && existing.GetAnnotations()[key] == hash && owned(existing, owner) && !Edited(existing, owner)
}

func owned(o client.Object, owner string) bool {
	for _, mf := range o.GetManagedFields() {
		if mf.Manager == owner {
			return true
		}
	}
	return false
}

// Replace writes desired over existing, whole, as owner: an edit is
// undone entirely, fields someone added included. When another manager
// wrote existing (or none is recorded), the managed fields are set to one
// entry, owner's, holding every field of desired: the other managers'
// claims go with their edits (otherwise a manager that had applied the
// object would go on owning the fields it set to our values, and the
// object would read as edited for good), and the next write by anyone
// else is recorded. Resetting them to nothing instead (one empty entry)
// would stop the API server tracking writes to the object at all (it
// tracks an update only of an object with managed fields), and every later
// edit would go unseen.
func Replace(ctx context.Context, c client.Client, desired, existing client.Object, owner string) error {
	o := desired.DeepCopyObject().(client.Object)
	o.SetResourceVersion(existing.GetResourceVersion())
	if Edited(existing, owner) || !owned(existing, owner) {
		mf, err := ownAll(c.Scheme(), o, owner)
		if err != nil {
			return err
		}
		o.SetManagedFields(mf)
	}
	return c.Update(ctx, o, client.FieldOwner(owner))
}

// unowned are the fields ownAll leaves out.
var unowned = fieldpath.NewSet(
	fieldpath.MakePathOrDie("status"), fieldpath.MakePathOrDie("apiVersion"), fieldpath.MakePathOrDie("kind"),
	fieldpath.MakePathOrDie("metadata", "name"), fieldpath.MakePathOrDie("metadata", "namespace"),
)

// ownAll is one managed-fields entry, owner's update, holding every field
// of o, as the API server's field manager records them for a built-in
// kind (client-go's schema of the kinds, structured-merge-diff's set).
func ownAll(scheme *runtime.Scheme, o client.Object, owner string) ([]metav1.ManagedFieldsEntry, error) {
	gvk, err := apiutil.GVKForObject(o, scheme)
	if err != nil {
		return nil, err
	}
	typedObj := o.DeepCopyObject()
	typedObj.GetObjectKind().SetGroupVersionKind(gvk)
	tv, err := applyconfigurations.NewTypeConverter(scheme).ObjectToTyped(typedObj)
	if err != nil {
		return nil, fmt.Errorf("the fields of %s: %w", gvk.Kind, err)
	}
	set, err := tv.ToFieldSet()
	if err != nil {
		return nil, fmt.Errorf("the fields of %s: %w", gvk.Kind, err)
	}
	// Not status, which the API server's own controllers write (a
	// ValidatingAdmissionPolicy's type checking), nor the fields no
	// manager owns.
	b, err := set.RecursiveDifference(unowned).ToJSON()
	if err != nil {
		return nil, err
	}
	return []metav1.ManagedFieldsEntry{{
		Manager: owner, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: gvk.GroupVersion().String(),
		Time: ptr.To(metav1.Now()), FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: b},
	}}, nil
}
