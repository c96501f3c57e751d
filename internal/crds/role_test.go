package crds

import (
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// The operator's role lets it change exactly its own CRDs, the ones it
// applies: not the Policy Reports CRDs, which it only creates when absent
// and another tool may own, nor any other product's. A kind added to one
// and not the other fails here.
func TestRoleChangesOnlyOwnCRDs(t *testing.T) {
	all, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	foreign := Foreign(all)
	var own []string
	for _, c := range all {
		if !slices.Contains(foreign, c) {
			own = append(own, c.Name)
		}
	}
	raw, err := os.ReadFile("../../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal([]byte(strings.SplitN(string(raw), "\n---", 2)[0]), &role); err != nil {
		t.Fatal(err)
	}
	if role.Kind != "ClusterRole" {
		t.Fatalf("first document of role.yaml is a %s", role.Kind)
	}
	var changeable []string
	for _, r := range role.Rules {
		if !slices.Contains(r.APIGroups, "apiextensions.k8s.io") || !slices.Contains(r.Resources, "customresourcedefinitions") {
			continue
		}
		for _, verb := range []string{"update", "patch", "delete", "*"} {
			if !slices.Contains(r.Verbs, verb) {
				continue
			}
			if len(r.ResourceNames) == 0 {
				t.Errorf("the role may %s every CRD", verb)
			}
			changeable = append(changeable, r.ResourceNames...)
		}
	}
	slices.Sort(own)
	slices.Sort(changeable)
	changeable = slices.Compact(changeable)
	if !slices.Equal(own, changeable) {
		t.Errorf("the role may change CRDs %v, want exactly the operator's own %v", changeable, own)
	}
}
