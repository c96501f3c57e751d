package admission

import (
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestZZSingular(t *testing.T) {
	mapper := apimeta.NewDefaultRESTMapper(nil)
	mapper.Add(schema.GroupVersionKind{Version: "v1", Kind: "Secret"}, apimeta.RESTScopeNamespace)
	a := &auditor{deps: AuditDeps{Mapper: mapper}}
	for _, r := range []string{"secret", "Secrets", "SECRETS"} {
		gvr, ok := a.served(schema.GroupResource{Resource: r}, []string{"v1"})
		t.Logf("%s -> %v %v", r, gvr, ok)
	}
}
