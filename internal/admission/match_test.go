package admission

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/plugin/webhook/predicates/rules"
	"k8s.io/apiserver/pkg/cel/environment"
	corelisters "k8s.io/client-go/listers/core/v1"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// ruleRequests are requests of every shape rules distinguish.
var ruleRequests = map[string]request{
	"pod create":               {op: admissionv1.Create, kind: "Pod", resource: "pods", namespace: "caribou", name: "p"},
	"pod update":               {op: admissionv1.Update, kind: "Pod", resource: "pods", namespace: "caribou", name: "p"},
	"pod delete":               {op: admissionv1.Delete, kind: "Pod", resource: "pods", namespace: "caribou", name: "p"},
	"pods/status update":       {op: admissionv1.Update, kind: "Pod", resource: "pods", subresource: "status", namespace: "caribou", name: "p"},
	"pods/ephemeralcontainers": {op: admissionv1.Update, kind: "Pod", resource: "pods", subresource: "ephemeralcontainers", namespace: "caribou", name: "p"},
	"pods/exec connect":        {op: admissionv1.Connect, kind: "PodExecOptions", resource: "pods", subresource: "exec", namespace: "caribou", name: "p"},
	"deployment create":        {op: admissionv1.Create, group: "apps", kind: "Deployment", resource: "deployments", namespace: "caribou", name: "d"},
	"deployments/scale update": {op: admissionv1.Update, group: "apps", kind: "Scale", resource: "deployments", subresource: "scale", namespace: "caribou", name: "d"},
	"deployment v1beta1":       {op: admissionv1.Create, group: "apps", version: "v1beta1", kind: "Deployment", resource: "deployments", namespace: "caribou", name: "d"},
	"clusterrole create":       {op: admissionv1.Create, group: "rbac.authorization.k8s.io", kind: "ClusterRole", resource: "clusterroles", name: "r"},
}

func TestRuleMatching(t *testing.T) {
	tests := []struct {
		name  string
		rule  admissionv1alpha1.ResourceRule
		match []string // the ruleRequests it matches; the others it does not
	}{
		{"pods", resourceRule("", "v1", []string{"pods"}, anyOp),
			[]string{"pod create", "pod update", "pod delete"}},
		{"pods CREATE only", resourceRule("", "v1", []string{"pods"}, create),
			[]string{"pod create"}},
		{"pods/status", resourceRule("", "v1", []string{"pods/status"}, update),
			[]string{"pods/status update"}},
		{"pods/ephemeralcontainers", resourceRule("", "v1", []string{"pods/ephemeralcontainers"}, anyOp),
			[]string{"pods/ephemeralcontainers"}},
		{"pods/exec CONNECT", resourceRule("", "v1", []string{"pods/exec"}, connect),
			[]string{"pods/exec connect"}},
		{"pods/exec but CREATE", resourceRule("", "v1", []string{"pods/exec"}, create),
			nil},
		{"pods/* is pods and every subresource", resourceRule("", "v1", []string{"pods/*"}, anyOp),
			[]string{"pod create", "pod update", "pod delete", "pods/status update", "pods/ephemeralcontainers", "pods/exec connect"}},
		{"* is every resource, no subresource", resourceRule("*", "*", []string{"*"}, anyOp),
			[]string{"pod create", "pod update", "pod delete", "deployment create", "deployment v1beta1", "clusterrole create"}},
		{"*/* is everything", resourceRule("*", "*", []string{"*/*"}, anyOp),
			[]string{"pod create", "pod update", "pod delete", "pods/status update", "pods/ephemeralcontainers", "pods/exec connect",
				"deployment create", "deployments/scale update", "deployment v1beta1", "clusterrole create"}},
		{"*/scale", resourceRule("*", "*", []string{"*/scale"}, anyOp),
			[]string{"deployments/scale update"}},
		{"core group only", resourceRule("", "*", []string{"*"}, anyOp),
			[]string{"pod create", "pod update", "pod delete"}},
		{"apps v1 only", resourceRule("apps", "v1", []string{"deployments"}, anyOp),
			[]string{"deployment create"}},
		{"apps any version", resourceRule("apps", "*", []string{"deployments"}, anyOp),
			[]string{"deployment create", "deployment v1beta1"}},
		{"two groups", admissionv1alpha1.ResourceRule{APIGroups: []string{"", "apps"}, APIVersions: []string{"v1"}, Resources: []string{"pods", "deployments"}, Operations: []admissionregistrationv1.OperationType{create}},
			[]string{"pod create", "deployment create"}},
		{"DELETE and CONNECT", resourceRule("", "v1", []string{"pods", "pods/exec"}, del, connect),
			[]string{"pod delete", "pods/exec connect"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, errs := compileMatchIn(testCompiler(), &admissionv1alpha1.Match{Resources: []admissionv1alpha1.ResourceRule{tt.rule}}, fieldSpec().Child("match"), environment.StoredExpressions, false)
			if len(errs) > 0 {
				t.Fatal(errs.ToAggregate())
			}
			want := map[string]bool{}
			for _, n := range tt.match {
				if _, ok := ruleRequests[n]; !ok {
					t.Fatalf("no request %q", n)
				}
				want[n] = true
			}
			for name, rq := range ruleRequests {
				req := rq.build()
				got, err := m.matches(ctx, NewRequest(req, testNamespaces))
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if got != want[name] {
					t.Errorf("%s: matches = %v, want %v", name, got, want[name])
				}
				// The API server's own webhook rule matcher must agree.
				upstream := rules.Matcher{Rule: m.webhookRules[0], Attr: attributesOf(req)}
				if up := upstream.Matches(); up != got {
					t.Errorf("%s: matches = %v, the API server's webhook rule matcher says %v", name, got, up)
				}
			}
		})
	}
}

// attributesOf is the admission.Attributes of a request, for the API
// server's rule matcher.
func attributesOf(req *admissionv1.AdmissionRequest) admission.Attributes {
	return admission.NewAttributesRecord(nil, nil, schema.GroupVersionKind(req.Kind), req.Namespace, req.Name,
		schema.GroupVersionResource(req.Resource), req.SubResource, admission.Operation(req.Operation), nil, false, nil)
}

func TestMatchSelectorsAndExclusions(t *testing.T) {
	pod := func(ns string, labels map[string]string) map[string]any {
		p := podObject("p", labels, "app")
		p["metadata"].(map[string]any)["namespace"] = ns
		return p
	}
	podIn := func(ns string, op admissionv1.Operation, object, old map[string]any) request {
		r := request{op: op, kind: "Pod", resource: "pods", namespace: ns, name: "p"}
		if object != nil {
			r.object = obj(t, object)
		}
		if old != nil {
			r.oldObject = obj(t, old)
		}
		return r
	}
	nsObject := func(name string, labels map[string]string) map[string]any {
		return map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name, "labels": labels}}
	}
	nsReq := func(op admissionv1.Operation, name string, object, old map[string]any) request {
		r := request{op: op, kind: "Namespace", resource: "namespaces", namespace: name, name: name}
		if object != nil {
			r.object = obj(t, object)
		}
		if old != nil {
			r.oldObject = obj(t, old)
		}
		return r
	}
	clusterRole := request{op: admissionv1.Create, group: "rbac.authorization.k8s.io", kind: "ClusterRole", resource: "clusterroles", name: "r",
		object: obj(t, map[string]any{"metadata": map[string]any{"name": "r", "labels": map[string]any{"team": "caribou"}}})}

	everything := withRules(resourceRule("*", "*", []string{"*"}, anyOp))
	teamCaribou := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "caribou"}}
	appWeb := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}

	tests := []struct {
		name    string
		match   admissionv1alpha1.Match
		req     request
		want    bool
		wantErr string
	}{
		{"no selectors", match(everything), podIn("moose", admissionv1.Create, pod("moose", nil), nil), true, ""},
		{"excluded namespace", match(everything, withExcluded("kube-system", "moose")), podIn("moose", admissionv1.Create, pod("moose", nil), nil), false, ""},
		{"not excluded", match(everything, withExcluded("kube-system")), podIn("moose", admissionv1.Create, pod("moose", nil), nil), true, ""},
		{"excluded Namespace object itself", match(everything, withExcluded("kube-system")), nsReq(admissionv1.Update, "kube-system", nsObject("kube-system", nil), nsObject("kube-system", nil)), false, ""},

		{"namespaceSelector matches the namespace's labels", match(everything, withNamespaceSelector(teamCaribou)), podIn("caribou", admissionv1.Create, pod("caribou", nil), nil), true, ""},
		{"namespaceSelector does not match", match(everything, withNamespaceSelector(teamCaribou)), podIn("moose", admissionv1.Create, pod("moose", nil), nil), false, ""},
		{"namespaceSelector with expressions", match(everything, withNamespaceSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpExists}}})), podIn("bare", admissionv1.Create, pod("bare", nil), nil), false, ""},
		{"unknown namespace is an error", match(everything, withNamespaceSelector(teamCaribou)), podIn("nowhere", admissionv1.Create, pod("nowhere", nil), nil), false, `namespace "nowhere" is not in the namespace cache`},
		{"empty namespaceSelector matches an unknown namespace", match(everything, withNamespaceSelector(&metav1.LabelSelector{})), podIn("nowhere", admissionv1.Create, pod("nowhere", nil), nil), true, ""},
		{"Namespace CREATE by its own labels", match(everything, withNamespaceSelector(teamCaribou)), nsReq(admissionv1.Create, "new", nsObject("new", map[string]string{"team": "caribou"}), nil), true, ""},
		{"Namespace UPDATE by its new labels", match(everything, withNamespaceSelector(teamCaribou)), nsReq(admissionv1.Update, "moose", nsObject("moose", map[string]string{"team": "caribou"}), nsObject("moose", map[string]string{"team": "moose"})), true, ""},
		{"Namespace DELETE by its stored labels", match(everything, withNamespaceSelector(teamCaribou)), nsReq(admissionv1.Delete, "caribou", nil, nsObject("caribou", map[string]string{"team": "caribou"})), true, ""},
		{"Namespace DELETE without oldObject: the cache", match(everything, withNamespaceSelector(teamCaribou)), nsReq(admissionv1.Delete, "caribou", nil, nil), true, ""},
		{"cluster-scoped, empty selector", match(everything, withNamespaceSelector(&metav1.LabelSelector{})), clusterRole, true, ""},
		{"cluster-scoped, no selector", match(everything), clusterRole, true, ""},
		{"cluster-scoped, non-empty selector: always, as webhooks", match(everything, withNamespaceSelector(teamCaribou)), clusterRole, true, ""},

		{"objectSelector, new object", match(everything, withObjectSelector(appWeb)), podIn("caribou", admissionv1.Create, pod("caribou", map[string]string{"app": "web"}), nil), true, ""},
		{"objectSelector, no labels", match(everything, withObjectSelector(appWeb)), podIn("caribou", admissionv1.Create, pod("caribou", nil), nil), false, ""},
		{"objectSelector, old object only", match(everything, withObjectSelector(appWeb)), podIn("caribou", admissionv1.Update, pod("caribou", map[string]string{"app": "db"}), pod("caribou", map[string]string{"app": "web"})), true, ""},
		{"objectSelector, new object only", match(everything, withObjectSelector(appWeb)), podIn("caribou", admissionv1.Update, pod("caribou", map[string]string{"app": "web"}), pod("caribou", map[string]string{"app": "db"})), true, ""},
		{"objectSelector, neither", match(everything, withObjectSelector(appWeb)), podIn("caribou", admissionv1.Update, pod("caribou", map[string]string{"app": "db"}), pod("caribou", nil)), false, ""},
		{"objectSelector, DELETE has the old object only", match(everything, withObjectSelector(appWeb)), podIn("caribou", admissionv1.Delete, nil, pod("caribou", map[string]string{"app": "web"})), true, ""},
		{"objectSelector, DELETE not matching", match(everything, withObjectSelector(appWeb)), podIn("caribou", admissionv1.Delete, nil, pod("caribou", nil)), false, ""},
		{"objectSelector, NotIn matches a missing label", match(everything, withObjectSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"web"}}}})), podIn("caribou", admissionv1.Create, pod("caribou", nil), nil), true, ""},
		{"objectSelector, cluster-scoped", match(everything, withObjectSelector(teamCaribou)), clusterRole, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, errs := compileMatchIn(testCompiler(), &tt.match, fieldSpec().Child("match"), environment.StoredExpressions, false)
			if len(errs) > 0 {
				t.Fatal(errs.ToAggregate())
			}
			got, err := m.matches(ctx, NewRequest(tt.req.build(), testNamespaces))
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error = %v", err)
			}
			if got != tt.want {
				t.Errorf("matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchConditions(t *testing.T) {
	create := func(dryRun bool, labels map[string]string) request {
		return request{op: admissionv1.Create, kind: "Pod", resource: "pods", namespace: "caribou", name: "p",
			object: obj(t, podObject("p", labels, "app")), dryRun: dryRun}
	}
	tests := []struct {
		name    string
		conds   []string
		req     request
		want    bool
		wantErr string
	}{
		{"!request.dryRun, not a dry run", []string{"!request.dryRun"}, create(false, nil), true, ""},
		{"!request.dryRun, a dry run", []string{"!request.dryRun"}, create(true, nil), false, ""},
		{"object", []string{"object.metadata.name == 'p'"}, create(false, nil), true, ""},
		{"request fields", []string{"request.operation == 'CREATE' && request.resource.resource == 'pods' && request.kind.kind == 'Pod' && request.namespace == 'caribou' && request.userInfo.username == 'alice'"}, create(false, nil), true, ""},
		{"namespaceObject", []string{"namespaceObject.metadata.labels.team == 'caribou'"}, create(false, nil), true, ""},
		{"oldObject is null on CREATE", []string{"oldObject == null"}, create(false, nil), true, ""},
		{"all must hold", []string{"true", "object.metadata.name == 'q'"}, create(false, nil), false, ""},
		{"evaluation error", []string{"object.metadata.labels.missing == 'x'"}, create(false, nil), false, `condition "c0"`},
		{"false wins over an error", []string{"object.metadata.labels.missing == 'x'", "false"}, create(false, nil), false, ""},
		{"error with the others true", []string{"true", "object.spec.nothing.size() > 0"}, create(false, nil), false, `condition "c1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := match(withConditions(tt.conds...))
			m, errs := compileMatchIn(testCompiler(), &in, fieldSpec().Child("match"), environment.StoredExpressions, false)
			if len(errs) > 0 {
				t.Fatal(errs.ToAggregate())
			}
			got, err := m.matches(ctx, NewRequest(tt.req.build(), testNamespaces))
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error = %v", err)
			}
			if got != tt.want {
				t.Errorf("matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMatchCompileErrors(t *testing.T) {
	rule := func(groups, versions, resources []string, ops ...admissionregistrationv1.OperationType) admissionv1alpha1.ResourceRule {
		return admissionv1alpha1.ResourceRule{APIGroups: groups, APIVersions: versions, Resources: resources, Operations: ops}
	}
	v1 := []string{"v1"}
	core := []string{""}
	tests := []struct {
		name      string
		match     admissionv1alpha1.Match
		mutating  bool
		wantField string
		wantText  string
	}{
		{"no rules", admissionv1alpha1.Match{}, false, "spec.match.resources", "Required"},
		{"no groups", match(withRules(rule(nil, v1, []string{"pods"}, create))), false, "spec.match.resources[0].apiGroups", "Required"},
		{"* with another group", match(withRules(rule([]string{"*", "apps"}, v1, []string{"pods"}, create))), false, "spec.match.resources[0].apiGroups", "if '*' is present"},
		{"group with a version", match(withRules(rule([]string{"apps/v1"}, v1, []string{"pods"}, create))), false, "spec.match.resources[0].apiGroups[0]", "has no \"/\""},
		{"empty version", match(withRules(rule(core, []string{""}, []string{"pods"}, create))), false, "spec.match.resources[0].apiVersions[0]", "Required"},
		{"* with another version", match(withRules(rule(core, []string{"*", "v1"}, []string{"pods"}, create))), false, "spec.match.resources[0].apiVersions", "if '*' is present"},
		{"no operations", match(withRules(rule(core, v1, []string{"pods"}))), false, "spec.match.resources[0].operations", "Required"},
		{"unknown operation", match(withRules(rule(core, v1, []string{"pods"}, "PATCH"))), false, "spec.match.resources[0].operations[0]", "Unsupported value"},
		{"* with another operation", match(withRules(rule(core, v1, []string{"pods"}, anyOp, create))), false, "spec.match.resources[0].operations", "if '*' is present"},
		{"DELETE in a MutationPolicy", match(withRules(rule(core, v1, []string{"pods"}, create, del))), true, "spec.match.resources[0].operations[1]", "CREATE and UPDATE"},
		{"upper case resource", match(withRules(rule(core, v1, []string{"Pods"}, create))), false, "spec.match.resources[0].resources[0]", "lower-case"},
		{"partial wildcard", match(withRules(rule(core, v1, []string{"pod*"}, create))), false, "spec.match.resources[0].resources[0]", "whole resource"},
		{"missing subresource", match(withRules(rule(core, v1, []string{"pods/"}, create))), false, "spec.match.resources[0].resources[0]", "subresource after"},
		{"two subresources", match(withRules(rule(core, v1, []string{"pods/a/b"}, create))), false, "spec.match.resources[0].resources[0]", "at most one subresource"},
		{"*/* with others", match(withRules(rule(core, v1, []string{"*/*", "pods"}, create))), false, "spec.match.resources[0].resources", "if '*/*' is present"},
		{"* with a plain resource", match(withRules(rule(core, v1, []string{"*", "pods"}, create))), false, "spec.match.resources[0].resources", "if '*' is present"},
		{"pods/* with pods/status", match(withRules(rule(core, v1, []string{"pods/status", "pods/*"}, create))), false, "spec.match.resources[0].resources[0]", "if 'pods/*' is present"},
		{"*/status with pods/status", match(withRules(rule(core, v1, []string{"*/status", "pods/status"}, create))), false, "spec.match.resources[0].resources[1]", "if '*/status' is present"},
		{"bad excluded namespace", match(withExcluded("Kube_System")), false, "spec.match.excludedNamespaces[0]", "Invalid value"},
		{"duplicate excluded namespace", match(withExcluded("a", "a")), false, "spec.match.excludedNamespaces[1]", "Duplicate"},
		{"bad namespaceSelector", match(withNamespaceSelector(&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}})), false, "spec.match.namespaceSelector.matchExpressions[0].operator", "not a valid selector operator"},
		{"bad objectSelector", match(withObjectSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"a b": "c"}})), false, "spec.match.objectSelector.matchLabels", "Invalid value"},
		{"condition syntax", match(withConditions("request.dryRun ==")), false, "spec.match.conditions[0].expression", "compilation failed"},
		{"condition type", match(withConditions("true", "request.name")), false, "spec.match.conditions[1].expression", "must evaluate to bool"},
		{"condition empty", match(withConditions(" ")), false, "spec.match.conditions[0].expression", "Required"},
		{"condition names", admissionv1alpha1.Match{Resources: []admissionv1alpha1.ResourceRule{podRule}, Conditions: []admissionv1alpha1.MatchCondition{{Name: "a", Expression: "true"}, {Name: "a", Expression: "true"}}}, false, "spec.match.conditions[1].name", "Duplicate"},
		{"condition name syntax", admissionv1alpha1.Match{Resources: []admissionv1alpha1.ResourceRule{podRule}, Conditions: []admissionv1alpha1.MatchCondition{{Name: "not ok", Expression: "true"}}}, false, "spec.match.conditions[0].name", "Invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := compileMatchIn(testCompiler(), &tt.match, fieldSpec().Child("match"), environment.NewExpressions, tt.mutating)
			if !hasFieldError(errs, tt.wantField, tt.wantText) {
				t.Errorf("errors = %v, want one at %s containing %q", errs, tt.wantField, tt.wantText)
			}
		})
	}
}

func TestRules(t *testing.T) {
	mp := mutationPolicy("m", 0, match(withRules(
		resourceRule("", "v1", []string{"pods"}, anyOp),
		resourceRule("apps", "v1", []string{"deployments", "deployments/scale"}, update),
	)), setLabels(false, "a", "b"))
	got := mustCompileMutation(t, mp).Rules()
	want := []admissionregistrationv1.RuleWithOperations{
		{Operations: []admissionregistrationv1.OperationType{create, update}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}},
		{Operations: []admissionregistrationv1.OperationType{update}, Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments", "deployments/scale"}}},
	}
	if !rulesEqual(got, want) {
		t.Errorf("MutationPolicy rules = %v, want %v (\"*\" narrowed to CREATE, UPDATE)", got, want)
	}
	got[0].APIGroups[0] = "changed"
	if again := mustCompileMutation(t, mp).Rules(); again[0].APIGroups[0] != "" {
		t.Error("Rules returned the compiled policy's own slices")
	}

	// The snapshot's union: every rule once, in a stable order.
	vp := func(name string, rules ...admissionv1alpha1.ResourceRule) *admissionv1alpha1.ValidationPolicy {
		return validationPolicy(name, "", match(withRules(rules...)), "true")
	}
	e := validationEngine(t, nil,
		vp("a", resourceRule("", "v1", []string{"pods"}, create, update)),
		vp("b", resourceRule("", "v1", []string{"pods"}, create, update), resourceRule("", "v1", []string{"pods/exec"}, connect)),
		vp("c", resourceRule("apps", "*", []string{"deployments"}, del)),
	)
	union := e.Snapshot().Rules()
	want = []admissionregistrationv1.RuleWithOperations{
		{Operations: []admissionregistrationv1.OperationType{create, update}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}},
		{Operations: []admissionregistrationv1.OperationType{connect}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/exec"}}},
		{Operations: []admissionregistrationv1.OperationType{del}, Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"*"}, Resources: []string{"deployments"}}},
	}
	if !rulesEqual(union, want) {
		t.Errorf("union = %v, want %v", union, want)
	}
}

func rulesEqual(a, b []admissionregistrationv1.RuleWithOperations) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if ruleKey(&a[i]) != ruleKey(&b[i]) || a[i].Scope != nil {
			return false
		}
	}
	return true
}

// client-go's namespace lister is a NamespaceLister.
var _ NamespaceLister = corelisters.NamespaceLister(nil)
