package e2e

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// projectKind is one resource of PROJECT.
type projectKind struct {
	Domain, Group, Kind, Version string
}

func (k projectKind) groupKind() schema.GroupKind {
	return schema.GroupKind{Group: k.Group + "." + k.Domain, Kind: k.Kind}
}

// reportKinds are the kinds only the operator writes (the audit's
// reports): no sample and no editor role, a viewer role only.
var reportKinds = []string{"PolicyReport", "ClusterPolicyReport"}

// Every kind PROJECT lists has a sample that the API server and our own
// webhooks accept as it is written (a server-side dry run, as its author
// would apply it), and the editor and viewer roles config/rbac deploys
// grant it: what kubebuilder scaffolds for each kind, kept as kinds are
// added.
func TestEveryKindHasASampleAndRoles(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	b, err := os.ReadFile("../../PROJECT")
	if err != nil {
		t.Fatal(err)
	}
	var project struct{ Resources []projectKind }
	if err := yaml.Unmarshal(b, &project); err != nil {
		t.Fatal(err)
	}
	if len(project.Resources) < 9 {
		t.Fatalf("PROJECT lists %d kinds", len(project.Resources))
	}

	samples := map[schema.GroupKind][]*unstructured.Unstructured{}
	applied := map[string]bool{} // what `make run` applies, checked by TestSamples
	for _, dir := range []string{samplesDir, filepath.Join(samplesDir, "reference")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			for _, u := range readObjects(t, f) {
				gk := u.GroupVersionKind().GroupKind()
				samples[gk] = append(samples[gk], u)
				if dir == samplesDir {
					applied[u.GetName()+"/"+gk.String()] = true
				}
			}
		}
	}
	roles := deployedRoles(t)

	for _, k := range project.Resources {
		gk := k.groupKind()
		m, err := env.Client.RESTMapper().RESTMapping(gk, k.Version)
		if err != nil {
			t.Errorf("%s: %v", gk, err)
			continue
		}
		resource := m.Resource.Resource
		report := slices.Contains(reportKinds, k.Kind)
		if !report {
			if len(samples[gk]) == 0 {
				t.Errorf("%s has no sample in config/samples", gk)
			}
			for _, u := range samples[gk] {
				if applied[u.GetName()+"/"+gk.String()] {
					continue // applied and checked by TestSamples
				}
				u = u.DeepCopy()
				if err := env.Client.Patch(ctx, u, client.Apply, client.DryRunAll, client.FieldOwner("samples"), client.ForceOwnership); err != nil {
					t.Errorf("the sample %s %q is refused: %v", gk, u.GetName(), err)
				}
			}
			if !grants(roles[strings.ToLower(k.Kind)+"-editor-role"], k.Group+"."+k.Domain, resource, "create", "update", "delete") {
				t.Errorf("no editor role grants %s", resource)
			}
		}
		viewer := strings.ToLower(k.Kind) + "-viewer-role"
		if report {
			viewer = "policyreport-viewer-role"
		}
		if r := roles[viewer]; !grants(r, k.Group+"."+k.Domain, resource, "get", "list", "watch") || grants(r, k.Group+"."+k.Domain, resource, "update") {
			t.Errorf("%s does not grant reading %s, and only that", viewer, resource)
		}
	}
}

// readObjects reads every object of a multi-document YAML file.
func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// deployedRoles are the ClusterRoles config/rbac's kustomization lists,
// by name.
func deployedRoles(t *testing.T) map[string]*rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile("../../config/rbac/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ Resources []string }
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	out := map[string]*rbacv1.ClusterRole{}
	for _, f := range k.Resources {
		for _, u := range readObjects(t, filepath.Join("../../config/rbac", f)) {
			if u.GetKind() != "ClusterRole" {
				continue
			}
			var r rbacv1.ClusterRole
			b, err := yaml.Marshal(u.Object)
			if err == nil {
				err = yaml.UnmarshalStrict(b, &r)
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out[r.Name] = &r
		}
	}
	return out
}

// grants tells whether r allows every verb on group/resource.
func grants(r *rbacv1.ClusterRole, group, resource string, verbs ...string) bool {
	if r == nil {
		return false
	}
	for _, v := range verbs {
		ok := false
		for _, rule := range r.Rules {
			if slices.Contains(rule.APIGroups, group) && slices.Contains(rule.Resources, resource) && slices.Contains(rule.Verbs, v) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
