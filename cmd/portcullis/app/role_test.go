package app

import (
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// The operator's role lets it change exactly the webhook configurations
// it renders, by name: not another product's, which a compromised
// operator could otherwise delete or point elsewhere.
func TestRoleChangesOnlyOwnWebhookConfigurations(t *testing.T) {
	raw, err := os.ReadFile("../../../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal([]byte(strings.SplitN(string(raw), "\n---", 2)[0]), &role); err != nil {
		t.Fatal(err)
	}
	want := []string{MutatingWebhookConfiguration, ValidatingWebhookConfiguration, OwnKindsWebhookConfiguration, ApprovalWebhookConfiguration}
	slices.Sort(want)
	for _, resource := range []string{"validatingwebhookconfigurations", "mutatingwebhookconfigurations"} {
		var names []string
		for _, r := range role.Rules {
			if !slices.Contains(r.APIGroups, "admissionregistration.k8s.io") || !slices.Contains(r.Resources, resource) {
				continue
			}
			for _, verb := range []string{"update", "patch", "delete", "*"} {
				if !slices.Contains(r.Verbs, verb) {
					continue
				}
				if len(r.ResourceNames) == 0 {
					t.Errorf("the role may %s every %s", verb, resource)
				}
				names = append(names, r.ResourceNames...)
			}
		}
		slices.Sort(names)
		if names = slices.Compact(names); !slices.Equal(names, want) {
			t.Errorf("%s: the role may change %v, want exactly %v", resource, names, want)
		}
	}
}
