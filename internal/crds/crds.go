package crds

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	crdmanifests "github.com/portcullis-io/portcullis/config/crd"
)

// FieldOwner is the server-side apply field manager for our CRDs.
const FieldOwner = "portcullis"

// EstablishTimeout bounds the wait for the API server to serve a new CRD;
// it usually takes well under a second.
const EstablishTimeout = 60 * time.Second

// Load returns the embedded CRDs, sorted by name.
func Load() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var out []*apiextensionsv1.CustomResourceDefinition
	err := fs.WalkDir(crdmanifests.Bases, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := crdmanifests.Bases.ReadFile(path)
		if err != nil {
			return err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(b, crd); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, crd)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Enabled says whether a group/version is on.
type Enabled func(group, version string) bool

// Filter keeps the CRDs with at least one enabled version, and only their
// enabled versions.
func Filter(in []*apiextensionsv1.CustomResourceDefinition, enabled Enabled) []*apiextensionsv1.CustomResourceDefinition {
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, crd := range in {
		c := crd.DeepCopy()
		c.Spec.Versions = nil
		for _, v := range crd.Spec.Versions {
			if enabled(crd.Spec.Group, v.Name) {
				c.Spec.Versions = append(c.Spec.Versions, v)
			}
		}
		if len(c.Spec.Versions) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// Install applies the CRDs server-side and waits until each is established.
func Install(ctx context.Context, c client.Client, list []*apiextensionsv1.CustomResourceDefinition) error {
	for _, crd := range list {
		obj := crd.DeepCopy()
		obj.TypeMeta.APIVersion = apiextensionsv1.SchemeGroupVersion.String()
		obj.TypeMeta.Kind = "CustomResourceDefinition"
		obj.ResourceVersion = ""
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return fmt.Errorf("CRD %s: %w", crd.Name, err)
		}
		ac := client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: u})
		if err := c.Apply(ctx, ac, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying CRD %s: %w", crd.Name, err)
		}
	}
	return waitEstablished(ctx, c, list)
}

// waitEstablished waits until the API server serves each CRD.
func waitEstablished(ctx context.Context, c client.Client, list []*apiextensionsv1.CustomResourceDefinition) error {
	for _, crd := range list {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, EstablishTimeout, true, func(ctx context.Context) (bool, error) {
			var got apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, &got); err != nil {
				return false, nil
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", crd.Name, err)
		}
	}
	return nil
}

// Foreign are the embedded CRDs of groups that are not Portcullis's own
// (the Policy Reports API): the operator installs them only when absent.
func Foreign(in []*apiextensionsv1.CustomResourceDefinition) []*apiextensionsv1.CustomResourceDefinition {
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, crd := range in {
		if !strings.HasSuffix(crd.Spec.Group, ".portcullis.io") {
			out = append(out, crd)
		}
	}
	return out
}

// CreateIfAbsent creates each CRD the cluster does not have and waits
// until it is established; one that exists, whoever installed it, is left
// as it is.
func CreateIfAbsent(ctx context.Context, c client.Client, list []*apiextensionsv1.CustomResourceDefinition) error {
	var created []*apiextensionsv1.CustomResourceDefinition
	for _, crd := range list {
		var got apiextensionsv1.CustomResourceDefinition
		err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, &got)
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading CRD %s: %w", crd.Name, err)
		}
		obj := crd.DeepCopy()
		obj.ResourceVersion = ""
		if err := c.Create(ctx, obj, client.FieldOwner(FieldOwner)); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CRD %s: %w", crd.Name, err)
		}
		created = append(created, crd)
	}
	return waitEstablished(ctx, c, created)
}
