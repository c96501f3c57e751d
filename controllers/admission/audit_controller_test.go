package admission

import (
	"os"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	engine "github.com/portcullis-io/portcullis/internal/admission"
)

// What a rule with "*" audits is what the operator's role lets it list:
// a kind added to one and not the other fails here.
func TestAuditableIsWhatTheRoleLists(t *testing.T) {
	raw, err := os.ReadFile("../../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &role); err != nil {
		t.Fatal(err)
	}
	listable := map[schema.GroupResource]bool{}
	for _, r := range role.Rules {
		if !slices.Contains(r.Verbs, "list") {
			continue
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				listable[schema.GroupResource{Group: g, Resource: res}] = true
			}
		}
	}
	for _, gr := range auditable {
		if !listable[gr] {
			t.Errorf("%s is audited for \"*\" but the role does not list it", gr)
		}
	}
	if listable[schema.GroupResource{Resource: "secrets"}] {
		t.Error("the role lists Secrets cluster-wide")
	}
}

func TestAuditResources(t *testing.T) {
	mapper := apimeta.NewDefaultRESTMapper(nil)
	for _, gvk := range []schema.GroupVersionKind{
		{Version: "v1", Kind: "Pod"}, {Version: "v1", Kind: "ConfigMap"}, {Version: "v1", Kind: "Secret"},
		{Group: "apps", Version: "v1", Kind: "Deployment"}, {Group: "apps", Version: "v1", Kind: "DaemonSet"},
		{Group: "batch", Version: "v1", Kind: "Job"},
	} {
		mapper.Add(gvk, apimeta.RESTScopeNamespace)
	}
	compiler, err := engine.NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	policy := func(name string, groups, versions, resources []string, ops ...admissionregistrationv1.OperationType) *engine.CompiledValidation {
		t.Helper()
		p, el := engine.CompileValidationPolicy(compiler, &admissionv1alpha1.ValidationPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: admissionv1alpha1.ValidationPolicySpec{
				Match:       admissionv1alpha1.Match{Resources: []admissionv1alpha1.ResourceRule{{APIGroups: groups, APIVersions: versions, Resources: resources, Operations: ops}}},
				Validations: []admissionv1alpha1.Validation{{Expression: "true"}},
			}})
		if len(el) > 0 {
			t.Fatal(el)
		}
		return p
	}
	create := admissionregistrationv1.Create
	for _, tc := range []struct {
		name   string
		policy *engine.CompiledValidation
		want   []string
		note   string
	}{
		{"named", policy("named", []string{""}, []string{"v1"}, []string{"pods", "configmaps"}, create), []string{"/v1, Resource=configmaps", "/v1, Resource=pods"}, ""},
		{"every resource of a group", policy("apps", []string{"apps"}, []string{"*"}, []string{"*"}, admissionregistrationv1.OperationAll),
			[]string{"apps/v1, Resource=daemonsets", "apps/v1, Resource=deployments"}, `rules with "*" audit only the kinds the operator may list`},
		{"everything", policy("all", []string{"*"}, []string{"*"}, []string{"*"}, create),
			[]string{"/v1, Resource=configmaps", "/v1, Resource=pods", "apps/v1, Resource=daemonsets", "apps/v1, Resource=deployments", "batch/v1, Resource=jobs"}, `"*"`},
		{"a resource in every group", policy("jobs", []string{"*"}, []string{"v1"}, []string{"jobs"}, create), []string{"batch/v1, Resource=jobs"}, `"*"`},
		{"at a version not served", policy("old", []string{"apps"}, []string{"v1beta1"}, []string{"*"}, create), nil, `"*"`},
		{"Secrets", policy("secrets", []string{""}, []string{"v1"}, []string{"secrets", "pods/status"}, create), nil, "Secrets are never read"},
		{"a Secret by its singular", policy("secret", []string{""}, []string{"v1"}, []string{"secret"}, create), nil, "Secrets are never read"},
		{"not served", policy("gone", []string{"example.com"}, []string{"v1"}, []string{"widgets"}, create), nil, "widgets.example.com is not served"},
		{"updates only", policy("updates", []string{""}, []string{"v1"}, []string{"pods"}, admissionregistrationv1.Update), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &auditor{deps: AuditDeps{Mapper: mapper}}
			notes, users := map[string][]string{}, map[schema.GroupResource][]string{}
			var got []string
			for _, gvr := range a.resources(map[string]*engine.CompiledValidation{tc.policy.Name: tc.policy}, notes, users) {
				got = append(got, gvr.String())
				if !slices.Contains(users[gvr.GroupResource()], tc.policy.Name) {
					t.Errorf("%s is not recorded as used by %s", gvr, tc.policy.Name)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("resources %q, want %q", got, tc.want)
			}
			note := strings.Join(notes[tc.policy.Name], "; ")
			if (tc.note == "") != (note == "") || !strings.Contains(note, tc.note) {
				t.Errorf("note %q, want one with %q", note, tc.note)
			}
		})
	}
}
