package app

import (
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-io/portcullis/internal/crds"
)

// The operator's role lets it change, by name, exactly what it writes:
// its own CRDs (not the Policy Reports ones, which it only creates when
// absent and another tool may own) and the webhook configurations it
// renders. A compromised operator could otherwise repoint another
// product's conversion webhook or delete its admission webhooks. A kind or
// configuration added to one side and not the other fails here.
func TestRoleChangesOnlyWhatTheOperatorWrites(t *testing.T) {
	all, err := crds.Load()
	if err != nil {
		t.Fatal(err)
	}
	foreign := crds.Foreign(all)
	var ownCRDs []string
	for _, c := range all {
		if !slices.Contains(foreign, c) {
			ownCRDs = append(ownCRDs, c.Name)
		}
	}
	configurations := []string{MutatingWebhookConfiguration, ValidatingWebhookConfiguration, OwnKindsWebhookConfiguration, ApprovalWebhookConfiguration}
	role := managerClusterRole(t)
	for _, c := range []struct {
		group, resource string
		want            []string
	}{
		{apiextensionsv1.GroupName, "customresourcedefinitions", ownCRDs},
		{"admissionregistration.k8s.io", "validatingwebhookconfigurations", configurations},
		{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", configurations},
	} {
		var names []string
		for _, r := range role.Rules {
			if !slices.Contains(r.APIGroups, c.group) || !slices.Contains(r.Resources, c.resource) {
				continue
			}
			for _, verb := range []string{"update", "patch", "delete", "*"} {
				if !slices.Contains(r.Verbs, verb) {
					continue
				}
				if len(r.ResourceNames) == 0 {
					t.Errorf("the role may %s every %s", verb, c.resource)
				}
				names = append(names, r.ResourceNames...)
			}
		}
		slices.Sort(names)
		want := slices.Sorted(slices.Values(c.want))
		if names = slices.Compact(names); !slices.Equal(names, want) {
			t.Errorf("%s: the role may change %v, want exactly %v", c.resource, names, want)
		}
	}
}

// managerClusterRole is the ClusterRole controller-gen writes from the
// markers, the first document of config/rbac/role.yaml.
func managerClusterRole(t *testing.T) rbacv1.ClusterRole {
	t.Helper()
	raw, err := os.ReadFile("../../../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal([]byte(strings.SplitN(string(raw), "\n---", 2)[0]), &role); err != nil {
		t.Fatal(err)
	}
	if role.Kind != "ClusterRole" {
		t.Fatalf("the first document of role.yaml is a %s", role.Kind)
	}
	return role
}
