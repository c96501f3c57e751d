package e2e

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	authzv1alpha1 "github.com/portcullis-io/portcullis/api/authorization/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/explain"
)

// portcullis explain on the sample user bob, as the README shows it: a
// read the sample AccessPolicy allows, a delete nothing allows (refused at
// authorization, RBAC saying no), and, once a RoleBinding lets bob create
// pods, a privileged pod the sample ValidationPolicy refuses at admission.
func TestExplainSampleUserBob(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	if err := env.ApplyDir(ctx, samplesDir); err != nil {
		t.Fatal(err)
	}
	access := &authzv1alpha1.AccessPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bob-reads-caribou-pods"}}
	validation := &admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "caribou-no-privileged"}}
	for _, o := range []client.Object{access, validation,
		&admissionv1alpha1.MutationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "caribou-team-label"}},
		&admissionv1alpha1.MutationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "caribou-no-privilege-escalation"}},
		&admissionv1alpha1.ValidationPolicy{ObjectMeta: metav1.ObjectMeta{Name: "caribou-replica-limit"}},
		&admissionv1alpha1.PolicyException{ObjectMeta: metav1.ObjectMeta{Name: "caribou-node-agent"}},
		&authnv1alpha1.StaticToken{ObjectMeta: metav1.ObjectMeta{Name: "bob"}}} {
		t.Cleanup(func() { deleteObj(t, o) })
	}
	waitReady(t, ctx, access)
	waitAdmissionReady(t, ctx, validation)
	waitWebhookRules(t, ctx, false, "pods")

	run := func(req explain.Request) []explain.Row {
		t.Helper()
		req.User, req.Groups = "bob", []string{"developers"}
		rows, err := explain.Explain(ctx, env.ControlPlane.AdminConfig(), req)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := explain.Write(&b, rows); err != nil {
			t.Fatal(err)
		}
		t.Logf("portcullis explain --as bob --as-group developers %s:\n%s", describe(req), b.String())
		return rows
	}
	row := func(rows []explain.Row, phase string) explain.Row {
		for _, r := range rows {
			if r.Phase == phase {
				return r
			}
		}
		t.Fatalf("no %s row in %+v", phase, rows)
		return explain.Row{}
	}

	// Allowed, by the sample AccessPolicy.
	rows := run(explain.Request{Verb: "list", Resource: "pods", Namespace: caribou})
	if r := row(rows, "authentication"); r.Answer != "bob" || !strings.Contains(r.Details, "developers") {
		t.Errorf("authentication: %+v", r)
	}
	if r := row(rows, "authorization"); r.Answer != "allowed" || !strings.Contains(r.By, `AccessPolicy "bob-reads-caribou-pods"`) || len(r.Matched) != 1 {
		t.Errorf("list pods: %+v", r)
	}

	// Denied at authorization: no policy matches, and RBAC grants nothing.
	rows = run(explain.Request{Verb: "delete", Resource: "pods", Name: "web", Namespace: caribou})
	if r := row(rows, "authorization"); r.Answer != "denied" || !strings.Contains(r.By, "nothing allowed it") || len(r.Matched) != 0 || len(r.Unmatched) == 0 {
		t.Errorf("delete pods: %+v", r)
	}

	// Rejected at admission, once RBAC lets bob create pods.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pod-creator", Namespace: caribou},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bob-creates-pods", Namespace: caribou},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "bob"}}}
	for _, o := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deleteObj(t, o) })
	}
	var pod unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(`{apiVersion: v1, kind: Pod, metadata: {name: root},
spec: {containers: [{name: root, image: "registry.example/root:1", securityContext: {privileged: true}}]}}`), &pod.Object); err != nil {
		t.Fatal(err)
	}
	var r explain.Row
	within(t, ctx, 30*time.Second, "the privileged pod explained as refused at admission", func(context.Context) (bool, error) {
		rows = run(explain.Request{Manifest: pod.DeepCopy(), Namespace: caribou})
		r = row(rows, "validating admission")
		return row(rows, "authorization").Answer == "allowed" && r.Answer == "refused", fmt.Errorf("%+v", rows)
	})
	if !strings.Contains(r.Details, "privileged containers are not allowed in project-caribou") || !strings.Contains(r.By, "caribou-no-privileged") {
		t.Errorf("validating admission: %+v", r)
	}
	if !contains(r.Matched, "ValidationPolicy/caribou-no-privileged (Deny)"+executionTag(validation)+": denies: privileged containers are not allowed in project-caribou") {
		t.Errorf("matched validation policies: %q", r.Matched)
	}
	if m := row(rows, "mutating admission"); len(m.Matched) == 0 {
		t.Errorf("no mutation policy matched the pod: %+v", m)
	}
}

func executionTag(p *admissionv1alpha1.ValidationPolicy) string {
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil || p.Status.Execution == nil {
		return ""
	}
	return " [" + strings.ToLower(string(p.Status.Execution.Mode)) + "]"
}

func describe(r explain.Request) string {
	if r.Manifest != nil {
		return "-f pod.yaml -n " + r.Namespace
	}
	s := r.Verb + " " + r.Resource
	if r.Name != "" {
		s += " " + r.Name
	}
	return s + " -n " + r.Namespace
}
