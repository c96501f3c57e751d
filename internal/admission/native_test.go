package admission

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating/patch"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// hasTeam selects the namespaces with a team label: caribou and moose,
// not bare.
var hasTeam = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpExists}}}

var testExclusions = Exclusions{
	Namespaces: []string{"kube-system", "portcullis-system"},
	Conditions: []admissionregistrationv1.MatchCondition{{Name: "not-portcullis-kinds", Expression: "request.resource.group != 'portcullis.io'"}},
}

// The generated MutatingAdmissionPolicy, run by the API server's own
// mutating policy dispatcher, leaves each object as the webhook's answer
// does, rejects what the webhook rejects, and matches what it matches:
// same input, same answer, for every mutation that has a native form,
// with variables, selectors, excluded namespaces, conditions and each
// failure policy.
func TestNativeMutationsDoWhatTheWebhookDoes(t *testing.T) {
	withVars := func(p *admissionv1alpha1.MutationPolicy, vars ...admissionregistrationv1.Variable) *admissionv1alpha1.MutationPolicy {
		p.Spec.Variables = vars
		return p
	}
	withFailure := func(p *admissionv1alpha1.MutationPolicy, fp admissionregistrationv1.FailurePolicyType) *admissionv1alpha1.MutationPolicy {
		p.Spec.FailurePolicy = ptr.To(fp)
		return p
	}
	// Reads a label the pods do not have: an error at evaluation.
	failing := applyConfiguration(`Object{metadata: Object.metadata{labels: {"x": object.metadata.labels["missing"]}}}`)
	policies := []*admissionv1alpha1.MutationPolicy{
		mutationPolicy("m", 0, match(), setLabels(false, "team", "payments", "tier", "web")),
		mutationPolicy("m", 0, match(), setLabels(true, "team", "payments", "example.com/tier", "x")),
		mutationPolicy("m", 0, match(), setAnnotations(false, "example.com/owner", "ops")),
		mutationPolicy("m", 0, match(), setAnnotations(true, "example.com/owner", "ops", "note", "with \"quotes\" and \\ and ünïcode\n")),
		mutationPolicy("m", 0, match(), applyConfiguration(`Object{spec: Object.spec{containers: object.spec.containers.map(c, Object.spec.containers{name: c.name, securityContext: Object.spec.containers.securityContext{runAsNonRoot: true}})}}`)),
		withVars(mutationPolicy("m", 0, match(), applyConfiguration(`Object{metadata: Object.metadata{labels: {"team": variables.team, "containers": string(variables.count)}}}`)),
			admissionregistrationv1.Variable{Name: "count", Expression: "size(object.spec.containers)"},
			admissionregistrationv1.Variable{Name: "team", Expression: "'payments'"}),
		mutationPolicy("m", 0, match(), setLabels(false, "team", "payments"), setAnnotations(true, "note", "hi"),
			applyConfiguration(`Object{metadata: Object.metadata{labels: {"seen": object.metadata.labels["team"]}}}`)),
		mutationPolicy("m", 0, match(withObjectSelector(labelSelector("tier", "web")), withNamespaceSelector(hasTeam),
			withExcluded("moose"), withConditions("object.metadata.name != 'skip'")), setLabels(true, "matched", "yes")),
		mutationPolicy("m", 0, match(withRules(resourceRule("", "v1", []string{"pods"}, update))), setLabels(true, "matched", "yes")),
		withFailure(mutationPolicy("m", 0, match(), failing), admissionregistrationv1.Ignore),
		withFailure(mutationPolicy("m", 0, match(), failing), admissionregistrationv1.Fail),
		withFailure(mutationPolicy("m", 0, match(withConditions("object.metadata.labels['missing'] == 'x'")), setLabels(true, "matched", "yes")), admissionregistrationv1.Ignore),
	}
	pod := func(ns, name string, labels map[string]string, containers ...string) *admissionv1.AdmissionRequest {
		o := podObject(name, labels, containers...)
		meta(o)["namespace"] = ns
		return request{op: admissionv1.Create, kind: "Pod", resource: "pods", namespace: ns, name: name, object: obj(t, o)}.build()
	}
	requests := []*admissionv1.AdmissionRequest{
		pod("caribou", "p", nil, "app"),
		pod("caribou", "p", map[string]string{"team": "other", "tier": "web"}, "app", "second"),
		pod("caribou", "p", map[string]string{"example.com/tier": "old"}, "app"),
		pod("caribou", "skip", map[string]string{"tier": "web"}, "app"),
		pod("moose", "p", map[string]string{"tier": "web"}, "app"),
		pod("bare", "p", map[string]string{"tier": "web"}, "app"),
	}
	for i, webhook := range policies {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			mp, bind, err := NativeMutation(mustCompileMutation(t, webhook), nil, testExclusions)
			if err != nil {
				t.Fatal(err)
			}
			e := mutationEngine(t, testNamespaces, webhook)
			var changed, rejected int
			for j, req := range requests {
				want := e.Mutate(ctx, req)
				if want.Err() != nil {
					t.Fatalf("request %d: the webhook: %v", j, want.Err())
				}
				got := upstreamMutating(t, req, upstreamMAP{mp, bind})
				if webhookRejects := want.Rejection() != ""; webhookRejects != (got.err != nil) {
					t.Fatalf("request %d: the webhook rejects %v (%s), the API server: %v", j, webhookRejects, want.Rejection(), got.err)
				}
				if got.err != nil {
					rejected++
					continue
				}
				if len(want.Patch) > 0 {
					changed++
				}
				if w := typedPod(t, applyPatch(t, req.Object.Raw, want)); !reflect.DeepEqual(w, got.object) {
					t.Errorf("request %d:\nwebhook    %v\nAPI server %v\nmutations %+v", j, w, got.object, mp.Spec.Mutations)
				}
			}
			t.Logf("%d of %d requests changed, %d rejected", changed, len(requests), rejected)
		})
	}
}

// The generated ValidatingAdmissionPolicy and binding, run by the API
// server's own validating policy dispatcher, answer every request as the
// webhook does: the same requests matched (rules, selectors, excluded
// namespaces, conditions) and denied, with the same message and a 403,
// the same warnings and audit failures, the same audit annotations, and
// errors handled by the same failure policy.
func TestNativeValidationsAnswerAsTheWebhook(t *testing.T) {
	type validation = admissionv1alpha1.Validation
	policy := func(action admissionv1alpha1.Action, fp *admissionregistrationv1.FailurePolicyType, m admissionv1alpha1.Match, vals ...validation) *admissionv1alpha1.ValidationPolicy {
		p := validationPolicy("p", action, m)
		p.Spec.Validations = vals
		p.Spec.FailurePolicy = fp
		return p
	}
	withExtras := func(p *admissionv1alpha1.ValidationPolicy) *admissionv1alpha1.ValidationPolicy {
		p.Spec.Variables = []admissionregistrationv1.Variable{{Name: "count", Expression: "size(object.spec.containers)"}}
		p.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{
			{Key: "owner", ValueExpression: "string(object.metadata.name)"},
			{Key: "containers", ValueExpression: "string(variables.count)"},
		}
		return p
	}
	ignore, fail := ptr.To(admissionregistrationv1.Ignore), ptr.To(admissionregistrationv1.Fail)
	privileged := validation{Expression: noPrivileged, Message: "privileged containers are not allowed"}
	named := validation{Expression: "object.metadata.name != 'forbidden'", Message: "the name is taken", MessageExpression: "'the name ' + object.metadata.name + ' is taken'"}
	unnamed := validation{Expression: "variables.count < 3"}
	// Reads a label the pods do not have: an error at evaluation.
	failing := validation{Expression: "object.metadata.labels['missing'] == 'x'", Message: "never"}
	selective := match(withRules(resourceRule("", "v1", []string{"pods"}, create)), withObjectSelector(labelSelector("tier", "web")),
		withNamespaceSelector(hasTeam), withExcluded("moose"), withConditions("object.metadata.name != 'skip'"))
	selective.MatchPolicy = ptr.To(admissionregistrationv1.Exact)
	policies := []*admissionv1alpha1.ValidationPolicy{
		withExtras(policy(admissionv1alpha1.ActionDeny, nil, match(), privileged, named, unnamed)),
		policy("", nil, match(), privileged, named),
		policy(admissionv1alpha1.ActionDeny, fail, selective, privileged),
		withExtras(policy(admissionv1alpha1.ActionWarn, ignore, match(), privileged, named, unnamed)),
		withExtras(policy(admissionv1alpha1.ActionAudit, ignore, match(), privileged, named, unnamed)),
		policy(admissionv1alpha1.ActionDeny, ignore, match(), failing, privileged),
		policy(admissionv1alpha1.ActionDeny, fail, match(), failing),
		policy(admissionv1alpha1.ActionWarn, ignore, match(withConditions("object.metadata.labels['missing'] == 'x'")), privileged),
	}
	pod := func(op admissionv1.Operation, ns, name string, labels map[string]string, containers ...string) *admissionv1.AdmissionRequest {
		o := podObject(name, labels, containers...)
		meta(o)["namespace"] = ns
		r := request{op: op, kind: "Pod", resource: "pods", namespace: ns, name: name, object: obj(t, o)}
		if op == admissionv1.Update {
			r.oldObject = r.object
		}
		return r.build()
	}
	web := map[string]string{"tier": "web"}
	requests := []*admissionv1.AdmissionRequest{
		pod(admissionv1.Create, "caribou", "p", web, "app"),
		pod(admissionv1.Create, "caribou", "p", web, "app", "privileged", "third"),
		pod(admissionv1.Create, "caribou", "forbidden", web, "privileged"),
		pod(admissionv1.Create, "caribou", "p", nil, "privileged"),
		pod(admissionv1.Create, "caribou", "skip", web, "privileged"),
		pod(admissionv1.Create, "moose", "p", web, "privileged"),
		pod(admissionv1.Create, "bare", "p", web, "privileged"),
		pod(admissionv1.Update, "caribou", "p", web, "privileged"),
	}
	for i, p := range policies {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			vap, bind, err := NativeValidation(mustCompileValidation(t, p), nil, testExclusions)
			if err != nil {
				t.Fatal(err)
			}
			e := validationEngine(t, testNamespaces, p)
			var denied, warned, audited, annotated int
			for j, req := range requests {
				want := e.Validate(ctx, req)
				got := upstreamValidating(t, vap, bind, req)
				if want.Allowed() != (got.err == nil) {
					t.Fatalf("request %d: the webhook denies %v, the API server: %v", j, want.Denials, got.err)
				}
				if !want.Allowed() {
					denied++
					var se *apierrors.StatusError
					if !errors.As(got.err, &se) {
						t.Fatalf("request %d: the API server's denial %v is not a status", j, got.err)
					}
					// A failed validation: the same message, and 403
					// Forbidden. (A validation that could not be evaluated
					// is denied by both under Fail, but the API server
					// answers 422 Invalid with its own wording of the
					// error, where the webhook answers 403 naming the
					// validation.)
					_, msg, _ := strings.Cut(se.ErrStatus.Message, " is forbidden: ")
					if d := want.Denials[0]; !d.Error && (msg != upstreamDeniedMessage(vap.Name, d.Message) ||
						se.ErrStatus.Code != http.StatusForbidden || se.ErrStatus.Reason != metav1.StatusReasonForbidden) {
						t.Errorf("request %d: the API server denies %d %s %q, the webhook 403 Forbidden %q", j, se.ErrStatus.Code, se.ErrStatus.Reason, msg, d.Message)
					}
				}
				var warnings []string
				for _, w := range want.Warnings {
					warnings = append(warnings, upstreamWarning(vap.Name, w.Message))
				}
				if !slices.Equal(warnings, got.warnings) {
					t.Errorf("request %d: the webhook warns %q, the API server %q", j, warnings, got.warnings)
				}
				warned += len(warnings)
				if w, g := webhookAuditFailures(want), upstreamAuditFailures(t, got); !slices.Equal(w, g) {
					t.Errorf("request %d: the webhook audits %q, the API server %q", j, w, g)
				}
				audited += len(want.Audits)
				if w, g := webhookPolicyAnnotations(want, p.Name), upstreamPolicyAnnotations(got, vap.Name); !maps.Equal(w, g) {
					t.Errorf("request %d: the webhook's audit annotations %v, the API server's %v", j, w, g)
				}
				annotated += len(webhookPolicyAnnotations(want, p.Name))
			}
			t.Logf("of %d requests: %d denied, %d warnings, %d audit failures, %d audit annotations", len(requests), denied, warned, audited, annotated)
		})
	}
}

// An audit annotation that fails to evaluate is an error of its policy:
// under Ignore nothing, under Fail a failed validation of the policy's
// action on the webhook. The API server denies it under Fail whatever the
// binding's actions, so a Warn or Audit policy with audit annotations
// under Fail has no native form; every other combination runs natively
// and answers as the webhook does.
func TestNativeAuditAnnotationErrorsAsTheWebhook(t *testing.T) {
	req := podRequest(t, admissionv1.Create, podObject("p", nil, "app"), nil)
	for _, action := range []admissionv1alpha1.Action{"", admissionv1alpha1.ActionDeny, admissionv1alpha1.ActionWarn, admissionv1alpha1.ActionAudit} {
		for _, fp := range []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Fail, admissionregistrationv1.Ignore} {
			t.Run(string(action)+"/"+string(fp), func(t *testing.T) {
				policy := func(action admissionv1alpha1.Action) *admissionv1alpha1.ValidationPolicy {
					p := validationPolicy("p", action, match(), "true")
					p.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "k", ValueExpression: "string(object.metadata.labels['missing'])"}}
					p.Spec.FailurePolicy = ptr.To(fp)
					return p
				}
				p := policy(action)
				want := validationEngine(t, testNamespaces, p).Validate(ctx, req)
				if len(want.Errors) != 1 {
					t.Fatalf("the webhook: errors %v, want the audit annotation's", want.Errors)
				}
				vap, bind, err := NativeValidation(mustCompileValidation(t, p), nil, testExclusions)
				native := fp == admissionregistrationv1.Ignore || action == "" || action == admissionv1alpha1.ActionDeny
				if !native {
					var ne *NotExpressibleError
					if !errors.As(err, &ne) || ne.Field != "spec.auditAnnotations" {
						t.Fatalf("NativeValidation: %v, want not expressible at spec.auditAnnotations", err)
					}
					// Why: the form it would have, the Deny policy's bound
					// with this action, is denied by the API server where
					// the webhook admits.
					vap, bind, err = NativeValidation(mustCompileValidation(t, policy(admissionv1alpha1.ActionDeny)), nil, testExclusions)
					if err != nil {
						t.Fatal(err)
					}
					bind.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.ValidationAction(action)}
					if up := upstreamValidating(t, vap, bind, req); up.err == nil || !want.Allowed() {
						t.Fatalf("the API server: %v, the webhook allows %v: the %s binding is not denied", up.err, want.Allowed(), action)
					}
					return
				}
				if err != nil {
					t.Fatalf("NativeValidation: %v", err)
				}
				up := upstreamValidating(t, vap, bind, req)
				if want.Allowed() != (up.err == nil) || len(want.Warnings) != len(up.warnings) || len(want.Audits) != len(upstreamAuditFailures(t, up)) {
					t.Errorf("the webhook: denials %v, warnings %v, audits %v; the API server: %v, warnings %v, annotations %v",
						want.Denials, want.Warnings, want.Audits, up.err, up.warnings, up.annotations)
				}
			})
		}
	}
}

// An exception's CEL form, as a generated policy's match condition,
// exempts exactly what the webhook exempts.
func TestNativeExceptionConditionsExemptAsTheWebhook(t *testing.T) {
	web := map[string]string{"app": "web"}
	pod := func(op admissionv1.Operation, ns, user string, groups []string, labels map[string]string) *admissionv1.AdmissionRequest {
		o := podObject("p", labels, "app")
		meta(o)["namespace"] = ns
		r := request{op: op, kind: "Pod", resource: "pods", namespace: ns, name: "p", username: user, groups: groups}
		if op == admissionv1.Delete {
			r.oldObject = obj(t, o)
		} else {
			r.object = obj(t, o)
		}
		return r.build()
	}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}, MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db"}},
		{Key: "legacy", Operator: metav1.LabelSelectorOpDoesNotExist},
	}}
	matches := []admissionv1alpha1.ExceptionMatch{
		{},
		{Namespaces: []string{"caribou"}},
		{Names: []string{"p", "q"}},
		{Names: []string{"q"}},
		{ObjectSelector: labelSelector("app", "web")},
		{ObjectSelector: sel},
		{ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists}}}},
		{ObjectSelector: &metav1.LabelSelector{}},
		{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Delete}},
		{Users: []string{"alice"}},
		{Groups: []string{"ops"}},
		{Users: []string{"alice"}, Groups: []string{"ops"}},
		{ServiceAccounts: []admissionv1alpha1.ServiceAccountReference{{Namespace: "kube-system", Name: "replicaset-controller"}}},
		{Namespaces: []string{"caribou"}, ObjectSelector: labelSelector("app", "web"), Users: []string{"alice"}},
	}
	requests := []*admissionv1.AdmissionRequest{
		pod(admissionv1.Create, "caribou", "alice", nil, nil),
		pod(admissionv1.Create, "caribou", "bob", []string{"ops", "dev"}, web),
		pod(admissionv1.Create, "moose", "system:serviceaccount:kube-system:replicaset-controller", nil, map[string]string{"app": "web", "tier": "db"}),
		pod(admissionv1.Delete, "caribou", "alice", nil, web),
		pod(admissionv1.Update, "caribou", "bob", nil, map[string]string{"app": "web", "legacy": "1"}),
	}
	for i, m := range matches {
		x, errs := CompileException(exception("x", m, vpRef("deny-all")))
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		all := withRules(resourceRule("", "v1", []string{"pods"}, anyOp))
		deny := validationPolicy("deny-all", admissionv1alpha1.ActionDeny, match(all), "false")
		cv := mustCompileValidation(t, deny)
		vap, bind, err := NativeValidation(cv, []*CompiledException{x}, Exclusions{})
		if err != nil {
			t.Fatal(err)
		}
		conds := vap.Spec.MatchConditions
		if len(conds) != 1 || conds[0].Name != "policyexceptions.portcullis.io/exception-x" {
			t.Fatalf("match %d: conditions %v", i, conds)
		}
		// The webhook, serving the policy and the exception.
		e := validationEngine(t, testNamespaces, deny)
		xr := NewExceptionRegistry(NewMutationEngine(nil), e)
		xr.Set("x", x)
		xr.MarkReady()
		exempted := 0
		for j, req := range requests {
			res := e.Validate(ctx, req)
			exempt := len(res.Exempted) == 1
			if exempt == (len(res.Denials) > 0) {
				t.Fatalf("match %d, request %d: the webhook exempts %v, denies %v", i, j, res.Exempted, res.Denials)
			}
			if exempt {
				exempted++
			}
			// The API server, evaluating the generated policy.
			up := upstreamValidating(t, vap, bind, req)
			if nativeExempt := up.err == nil; nativeExempt != exempt {
				t.Errorf("match %d, request %d: the webhook exempts %v, the API server %v (%v)\n%s", i, j, exempt, nativeExempt, up.err, conds[0].Expression)
			}
		}
		t.Logf("match %d: %d of %d requests exempted", i, exempted, len(requests))
	}
}

// nativeMeta is the metadata every generated object of policy name (of
// kind, with its label value) has; hash is the digest the object carries.
func nativeMeta(generated, kindLabel, kind, source, uid, hash string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:        generated,
		Labels:      map[string]string{GeneratedLabel: kindLabel, "app.kubernetes.io/managed-by": "portcullis"},
		Annotations: map[string]string{SourceAnnotation: source, HashAnnotation: hash},
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "admission.portcullis.io/v1alpha1", Kind: kind, Name: source, UID: types.UID(uid),
		}},
	}
}

// generatedHash is the digest both generated objects carry, the same.
func generatedHash(t *testing.T, policy, binding metav1.ObjectMeta) string {
	t.Helper()
	h := policy.Annotations[HashAnnotation]
	if h == "" || binding.Annotations[HashAnnotation] != h {
		t.Fatalf("digests %q, %q", h, binding.Annotations[HashAnnotation])
	}
	return h
}

func namedRule(groups, versions, resources []string, ops ...admissionregistrationv1.OperationType) admissionregistrationv1.NamedRuleWithOperations {
	return admissionregistrationv1.NamedRuleWithOperations{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
		Operations: ops, Rule: admissionregistrationv1.Rule{APIGroups: groups, APIVersions: versions, Resources: resources}}}
}

// excludedNames is the namespaceSelector requirement that keeps names out.
func excludedNames(names ...string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: names}
}

// The generated ValidatingAdmissionPolicy and binding are the policy, field
// by field: its rules, selectors (with its excluded namespaces and the
// operator's), matchPolicy (Equivalent by default), conditions (then the
// operator's, then one per exception), variables, validations with their
// messages and the webhook's 403 reason, audit annotations and failure
// policy (Fail by default), no parameters, and its action as the
// binding's; named after it, owned by it, with one digest on both.
func TestNativeValidationForm(t *testing.T) {
	forbidden := ptr.To(metav1.StatusReasonForbidden)
	rich := validationPolicy("no-privileged", admissionv1alpha1.ActionWarn, match(
		withRules(podRule, resourceRule("apps", "v1", []string{"deployments", "deployments/scale"}, create)),
		withExcluded("legacy"),
		withNamespaceSelector(&metav1.LabelSelector{MatchLabels: map[string]string{"team": "caribou"},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpIn, Values: []string{"prod"}}}}),
		withObjectSelector(labelSelector("app", "web")),
		withConditions("object != null", "!request.dryRun")))
	rich.UID = "uid-p"
	rich.Spec.Match.MatchPolicy = ptr.To(admissionregistrationv1.Exact)
	rich.Spec.Variables = []admissionregistrationv1.Variable{{Name: "c", Expression: "object.spec.containers"}}
	rich.Spec.Validations = []admissionv1alpha1.Validation{
		{Expression: noPrivileged, Message: "privileged containers are not allowed"},
		{Expression: "size(variables.c) < 10", MessageExpression: "'too many: ' + string(size(variables.c))"},
		{Expression: "object.metadata.name != 'x'", Message: "not x", MessageExpression: "'not ' + object.metadata.name"},
	}
	rich.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "k", ValueExpression: "'v'"}}
	rich.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)

	defaults := validationPolicy("audited", admissionv1alpha1.ActionAudit, match(), noPrivileged)

	plain := validationPolicy("plain", "", match(withRules(resourceRule("*", "*", []string{"*/*"}, anyOp))), "true")
	plain.Spec.Validations[0].Message = "never"
	plain.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "who", ValueExpression: "request.userInfo.username"}}
	exempt, errs := CompileException(exception("caribou-too", admissionv1alpha1.ExceptionMatch{Namespaces: []string{"caribou"}}, vpRef("plain")))
	if len(errs) > 0 {
		t.Fatal(errs)
	}

	for _, tc := range []struct {
		policy     *admissionv1alpha1.ValidationPolicy
		exceptions []*CompiledException
		x          Exclusions
		want       func(hash string) (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding)
	}{
		{rich, nil, testExclusions, func(hash string) (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
			name := "no-privileged.validate.portcullis.io"
			return &admissionregistrationv1.ValidatingAdmissionPolicy{
					TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
					ObjectMeta: nativeMeta(name, "validationpolicy", KindValidationPolicy, "no-privileged", "uid-p", hash),
					Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
						MatchConstraints: &admissionregistrationv1.MatchResources{
							NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "caribou"}, MatchExpressions: []metav1.LabelSelectorRequirement{
								{Key: "env", Operator: metav1.LabelSelectorOpIn, Values: []string{"prod"}},
								excludedNames("kube-system", "legacy", "portcullis-system"),
							}},
							ObjectSelector: labelSelector("app", "web"),
							ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{
								namedRule([]string{""}, []string{"v1"}, []string{"pods"}, create, update),
								namedRule([]string{"apps"}, []string{"v1"}, []string{"deployments", "deployments/scale"}, create),
							},
							MatchPolicy: ptr.To(admissionregistrationv1.Exact),
						},
						Validations: []admissionregistrationv1.Validation{
							{Expression: noPrivileged, Message: "privileged containers are not allowed", Reason: forbidden},
							{Expression: "size(variables.c) < 10", MessageExpression: "'too many: ' + string(size(variables.c))", Reason: forbidden},
							{Expression: "object.metadata.name != 'x'", Message: "not x", MessageExpression: "'not ' + object.metadata.name", Reason: forbidden},
						},
						FailurePolicy:    ptr.To(admissionregistrationv1.Ignore),
						AuditAnnotations: []admissionregistrationv1.AuditAnnotation{{Key: "k", ValueExpression: "'v'"}},
						MatchConditions: []admissionregistrationv1.MatchCondition{
							{Name: "c0", Expression: "object != null"},
							{Name: "c1", Expression: "!request.dryRun"},
							{Name: "not-portcullis-kinds", Expression: "request.resource.group != 'portcullis.io'"},
						},
						Variables: []admissionregistrationv1.Variable{{Name: "c", Expression: "object.spec.containers"}},
					},
				}, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
					TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
					ObjectMeta: nativeMeta(name, "validationpolicy", KindValidationPolicy, "no-privileged", "uid-p", hash),
					Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
						PolicyName:        name,
						ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Warn},
					},
				}
		}},
		{defaults, nil, testExclusions, func(hash string) (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
			name := "audited.validate.portcullis.io"
			return &admissionregistrationv1.ValidatingAdmissionPolicy{
					TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
					ObjectMeta: nativeMeta(name, "validationpolicy", KindValidationPolicy, "audited", "uid-audited", hash),
					Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
						MatchConstraints: &admissionregistrationv1.MatchResources{
							NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{excludedNames("kube-system", "portcullis-system")}},
							ObjectSelector:    &metav1.LabelSelector{},
							ResourceRules:     []admissionregistrationv1.NamedRuleWithOperations{namedRule([]string{""}, []string{"v1"}, []string{"pods"}, create, update)},
							MatchPolicy:       ptr.To(admissionregistrationv1.Equivalent),
						},
						Validations:     []admissionregistrationv1.Validation{{Expression: noPrivileged, Reason: forbidden}},
						FailurePolicy:   ptr.To(admissionregistrationv1.Fail),
						MatchConditions: []admissionregistrationv1.MatchCondition{{Name: "not-portcullis-kinds", Expression: "request.resource.group != 'portcullis.io'"}},
					},
				}, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
					TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
					ObjectMeta: nativeMeta(name, "validationpolicy", KindValidationPolicy, "audited", "uid-audited", hash),
					Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
						PolicyName:        name,
						ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Audit},
					},
				}
		}},
		{plain, []*CompiledException{exempt}, Exclusions{}, func(hash string) (*admissionregistrationv1.ValidatingAdmissionPolicy, *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
			name := "plain.validate.portcullis.io"
			return &admissionregistrationv1.ValidatingAdmissionPolicy{
					TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicy"},
					ObjectMeta: nativeMeta(name, "validationpolicy", KindValidationPolicy, "plain", "uid-plain", hash),
					Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
						MatchConstraints: &admissionregistrationv1.MatchResources{
							NamespaceSelector: &metav1.LabelSelector{},
							ObjectSelector:    &metav1.LabelSelector{},
							ResourceRules:     []admissionregistrationv1.NamedRuleWithOperations{namedRule([]string{"*"}, []string{"*"}, []string{"*/*"}, anyOp)},
							MatchPolicy:       ptr.To(admissionregistrationv1.Equivalent),
						},
						Validations:      []admissionregistrationv1.Validation{{Expression: "true", Message: "never", Reason: forbidden}},
						FailurePolicy:    ptr.To(admissionregistrationv1.Fail),
						AuditAnnotations: []admissionregistrationv1.AuditAnnotation{{Key: "who", ValueExpression: "request.userInfo.username"}},
						MatchConditions: []admissionregistrationv1.MatchCondition{
							{Name: "policyexceptions.portcullis.io/exception-caribou-too", Expression: `!(request.namespace in ["caribou"])`},
						},
					},
				}, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
					TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingAdmissionPolicyBinding"},
					ObjectMeta: nativeMeta(name, "validationpolicy", KindValidationPolicy, "plain", "uid-plain", hash),
					Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
						PolicyName:        name,
						ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
					},
				}
		}},
	} {
		t.Run(tc.policy.Name, func(t *testing.T) {
			vap, bind, err := NativeValidation(mustCompileValidation(t, tc.policy), tc.exceptions, tc.x)
			if err != nil {
				t.Fatal(err)
			}
			wantVAP, wantBind := tc.want(generatedHash(t, vap.ObjectMeta, bind.ObjectMeta))
			if !reflect.DeepEqual(vap, wantVAP) {
				t.Errorf("ValidatingAdmissionPolicy (- want, + got):\n%s", diff.Diff(wantVAP, vap))
			}
			if !reflect.DeepEqual(bind, wantBind) {
				t.Errorf("ValidatingAdmissionPolicyBinding (- want, + got):\n%s", diff.Diff(wantBind, bind))
			}
		})
	}

	// The digest follows what is generated, and only that.
	cv := mustCompileValidation(t, rich)
	vap, bind, _ := NativeValidation(cv, nil, testExclusions)
	hash := generatedHash(t, vap.ObjectMeta, bind.ObjectMeta)
	x, _ := CompileException(exception("x", admissionv1alpha1.ExceptionMatch{Namespaces: []string{"caribou"}}, vpRef("no-privileged")))
	if vap2, _, _ := NativeValidation(cv, []*CompiledException{x}, testExclusions); vap2.Annotations[HashAnnotation] == hash {
		t.Errorf("an exception does not change the digest")
	}
	if again, _, _ := NativeValidation(cv, nil, testExclusions); again.Annotations[HashAnnotation] != hash {
		t.Error("the digest is not stable")
	}
}

// The generated MutatingAdmissionPolicy and binding are the policy, field
// by field: its rules (a "*" of operations as CREATE and UPDATE, all a
// mutation acts on), selectors, matchPolicy, conditions, the operator's
// and exceptions', variables, mutations in order (applyConfiguration as
// written, labels and annotations as JSON patches, whose effect
// TestNativeMutationsDoWhatTheWebhookDoes checks), failure policy,
// reinvocation IfNeeded as the webhook's, and no parameters.
func TestNativeMutationForm(t *testing.T) {
	apply := `Object{metadata: Object.metadata{labels: {"team": variables.team}}}`
	rich := mutationPolicy("team", 3, match(
		withRules(resourceRule("", "v1", []string{"pods"}, create), resourceRule("apps", "v1", []string{"deployments"}, update)),
		withExcluded("legacy"),
		withNamespaceSelector(labelSelector("team", "caribou")),
		withObjectSelector(labelSelector("app", "web")),
		withConditions("object.metadata.name != 'skip'")), applyConfiguration(apply))
	rich.UID = "uid-m"
	rich.Spec.Match.MatchPolicy = ptr.To(admissionregistrationv1.Exact)
	rich.Spec.Variables = []admissionregistrationv1.Variable{{Name: "team", Expression: "'caribou'"}}
	rich.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)

	several := mutationPolicy("several", 0, match(withRules(resourceRule("", "v1", []string{"pods"}, anyOp))),
		setLabels(false, "a", "b"), applyConfiguration(apply), setAnnotations(true, "c", "d"))
	several.Spec.Variables = []admissionregistrationv1.Variable{{Name: "team", Expression: "'caribou'"}}
	exempt, errs := CompileException(exception("sa", admissionv1alpha1.ExceptionMatch{Users: []string{"alice"}},
		admissionv1alpha1.PolicyReference{Kind: KindMutationPolicy, Name: "several"}))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	jsonPatched := admissionregistrationv1.Mutation{PatchType: admissionregistrationv1.PatchTypeJSONPatch}
	applied := admissionregistrationv1.Mutation{PatchType: admissionregistrationv1.PatchTypeApplyConfiguration, ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{Expression: apply}}

	for _, tc := range []struct {
		policy     *admissionv1alpha1.MutationPolicy
		exceptions []*CompiledException
		want       func(hash string) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding)
	}{
		{rich, nil, func(hash string) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
			name := "team.mutate.portcullis.io"
			return &admissionregistrationv1.MutatingAdmissionPolicy{
					TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingAdmissionPolicy"},
					ObjectMeta: nativeMeta(name, "mutationpolicy", KindMutationPolicy, "team", "uid-m", hash),
					Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
						MatchConstraints: &admissionregistrationv1.MatchResources{
							NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "caribou"},
								MatchExpressions: []metav1.LabelSelectorRequirement{excludedNames("kube-system", "legacy", "portcullis-system")}},
							ObjectSelector: labelSelector("app", "web"),
							ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{
								namedRule([]string{""}, []string{"v1"}, []string{"pods"}, create),
								namedRule([]string{"apps"}, []string{"v1"}, []string{"deployments"}, update),
							},
							MatchPolicy: ptr.To(admissionregistrationv1.Exact),
						},
						Variables:     []admissionregistrationv1.Variable{{Name: "team", Expression: "'caribou'"}},
						Mutations:     []admissionregistrationv1.Mutation{applied},
						FailurePolicy: ptr.To(admissionregistrationv1.Ignore),
						MatchConditions: []admissionregistrationv1.MatchCondition{
							{Name: "c0", Expression: "object.metadata.name != 'skip'"},
							{Name: "not-portcullis-kinds", Expression: "request.resource.group != 'portcullis.io'"},
						},
						ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
					},
				}, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
					TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingAdmissionPolicyBinding"},
					ObjectMeta: nativeMeta(name, "mutationpolicy", KindMutationPolicy, "team", "uid-m", hash),
					Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: name},
				}
		}},
		{several, []*CompiledException{exempt}, func(hash string) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
			name := "several.mutate.portcullis.io"
			return &admissionregistrationv1.MutatingAdmissionPolicy{
					TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingAdmissionPolicy"},
					ObjectMeta: nativeMeta(name, "mutationpolicy", KindMutationPolicy, "several", "uid-several", hash),
					Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
						MatchConstraints: &admissionregistrationv1.MatchResources{
							NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{excludedNames("kube-system", "portcullis-system")}},
							ObjectSelector:    &metav1.LabelSelector{},
							ResourceRules:     []admissionregistrationv1.NamedRuleWithOperations{namedRule([]string{""}, []string{"v1"}, []string{"pods"}, create, update)},
							MatchPolicy:       ptr.To(admissionregistrationv1.Equivalent),
						},
						Variables:     []admissionregistrationv1.Variable{{Name: "team", Expression: "'caribou'"}},
						Mutations:     []admissionregistrationv1.Mutation{jsonPatched, applied, jsonPatched},
						FailurePolicy: ptr.To(admissionregistrationv1.Fail),
						MatchConditions: []admissionregistrationv1.MatchCondition{
							{Name: "not-portcullis-kinds", Expression: "request.resource.group != 'portcullis.io'"},
							{Name: "policyexceptions.portcullis.io/exception-sa", Expression: `!((request.userInfo.username in ["alice"]))`},
						},
						ReinvocationPolicy: admissionregistrationv1.IfNeededReinvocationPolicy,
					},
				}, &admissionregistrationv1.MutatingAdmissionPolicyBinding{
					TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingAdmissionPolicyBinding"},
					ObjectMeta: nativeMeta(name, "mutationpolicy", KindMutationPolicy, "several", "uid-several", hash),
					Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: name},
				}
		}},
	} {
		t.Run(tc.policy.Name, func(t *testing.T) {
			mp, bind, err := NativeMutation(mustCompileMutation(t, tc.policy), tc.exceptions, testExclusions)
			if err != nil {
				t.Fatal(err)
			}
			wantMAP, wantBind := tc.want(generatedHash(t, mp.ObjectMeta, bind.ObjectMeta))
			// A label or annotation mutation is a JSON patch expression:
			// what it does is checked by running it.
			for i, m := range wantMAP.Spec.Mutations {
				if m.PatchType != admissionregistrationv1.PatchTypeJSONPatch || i >= len(mp.Spec.Mutations) {
					continue
				}
				if g := mp.Spec.Mutations[i].JSONPatch; g == nil || g.Expression == "" {
					t.Errorf("mutations[%d]: no JSON patch expression: %+v", i, mp.Spec.Mutations[i])
				} else {
					wantMAP.Spec.Mutations[i].JSONPatch = &admissionregistrationv1.JSONPatch{Expression: g.Expression}
				}
			}
			if !reflect.DeepEqual(mp, wantMAP) {
				t.Errorf("MutatingAdmissionPolicy (- want, + got):\n%s", diff.Diff(wantMAP, mp))
			}
			if !reflect.DeepEqual(bind, wantBind) {
				t.Errorf("MutatingAdmissionPolicyBinding (- want, + got):\n%s", diff.Diff(wantBind, bind))
			}
		})
	}
}

// What has no native form says so, naming the field; a policy that did
// not compile has none.
func TestNotExpressible(t *testing.T) {
	tooMany := validationPolicy("many", admissionv1alpha1.ActionDeny, match(), noPrivileged)
	for i := 0; i < 64; i++ {
		tooMany.Spec.Match.Conditions = append(tooMany.Spec.Match.Conditions, admissionv1alpha1.MatchCondition{Name: fmt.Sprintf("c%d", i), Expression: "true"})
	}
	withAnnotations := mutationPolicy("ann", 0, match(), setLabels(false, "a", "b"))
	withAnnotations.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "k", ValueExpression: "'v'"}}
	long := validationPolicy(strings.Repeat("a", 240), admissionv1alpha1.ActionDeny, match(), noPrivileged)
	for _, tc := range []struct {
		name  string
		err   func() error
		field string
	}{
		{"static JSON patch", func() error {
			_, _, err := NativeMutation(mustCompileMutation(t, mutationPolicy("jp", 0, match(), jsonPatch(`[{"op":"add","path":"/spec/x","value":1}]`))), nil, testExclusions)
			return err
		}, "spec.mutations[0].jsonPatch"},
		{"parameters by reference", func() error {
			p := validationPolicy("params", admissionv1alpha1.ActionDeny, match(), noPrivileged)
			p.Spec.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"}
			p.Spec.ParamRef = &admissionregistrationv1.ParamRef{Name: "limits", ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)}
			_, _, err := NativeValidation(mustCompileValidation(t, p), nil, testExclusions)
			return err
		}, "spec.paramRef"},
		{"audit annotations of a Warn policy under Fail", func() error {
			p := validationPolicy("warn-ann", admissionv1alpha1.ActionWarn, match(), noPrivileged)
			p.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "k", ValueExpression: "'v'"}}
			_, _, err := NativeValidation(mustCompileValidation(t, p), nil, testExclusions)
			return err
		}, "spec.auditAnnotations"},
		{"several mutations under Ignore", func() error {
			p := mutationPolicy("ign", 0, match(), setLabels(false, "a", "b"), setAnnotations(false, "c", "d"))
			p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
			_, _, err := NativeMutation(mustCompileMutation(t, p), nil, testExclusions)
			return err
		}, "spec.failurePolicy"},
		{"an exception that expires", func() error {
			x, _ := CompileException(exception("x", admissionv1alpha1.ExceptionMatch{}, vpRef("many")))
			x.ExpiresAt = time.Now().Add(time.Hour)
			_, _, err := NativeValidation(mustCompileValidation(t, validationPolicy("many", admissionv1alpha1.ActionDeny, match(), noPrivileged)), []*CompiledException{x}, testExclusions)
			return err
		}, "PolicyException x spec.expiresAt"},
		{"a condition named as the operator's", func() error {
			p := validationPolicy("dup", admissionv1alpha1.ActionDeny, match(), noPrivileged)
			p.Spec.Match.Conditions = []admissionv1alpha1.MatchCondition{{Name: "not-portcullis-kinds", Expression: "true"}}
			_, _, err := NativeValidation(mustCompileValidation(t, p), nil, testExclusions)
			return err
		}, "spec.match.conditions"},
		{"merge patch", func() error {
			_, _, err := NativeMutation(mustCompileMutation(t, mutationPolicy("mp", 0, match(), setLabels(false, "a", "b"), mergePatch(`{"metadata":{"labels":{"x":null}}}`))), nil, testExclusions)
			return err
		}, "spec.mutations[1].mergePatch"},
		{"audit annotations", func() error {
			_, _, err := NativeMutation(mustCompileMutation(t, withAnnotations), nil, testExclusions)
			return err
		}, "spec.auditAnnotations"},
		{"too many conditions", func() error {
			_, _, err := NativeValidation(mustCompileValidation(t, tooMany), nil, testExclusions)
			return err
		}, "spec.match.conditions"},
		{"long name", func() error {
			_, _, err := NativeValidation(mustCompileValidation(t, long), nil, testExclusions)
			return err
		}, "metadata.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ne *NotExpressibleError
			if err := tc.err(); !errors.As(err, &ne) || ne.Field != tc.field {
				t.Fatalf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
	broken, _ := CompileValidationPolicy(testCompiler(), validationPolicy("broken", admissionv1alpha1.ActionDeny, match(), "object.nope("))
	if _, _, err := NativeValidation(broken, nil, testExclusions); err == nil {
		t.Fatal("a policy with an expression that does not compile has a native form")
	}
}

// Rules overlap when some request may match both; wildcards overlap
// anything.
func TestRulesOverlap(t *testing.T) {
	r := func(group, version, resource string, ops ...admissionregistrationv1.OperationType) []admissionregistrationv1.RuleWithOperations {
		return []admissionregistrationv1.RuleWithOperations{{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{group}, APIVersions: []string{version}, Resources: []string{resource}}}}
	}
	for _, tc := range []struct {
		a, b []admissionregistrationv1.RuleWithOperations
		want bool
	}{
		{r("", "v1", "pods", create), r("", "v1", "pods", create), true},
		{r("", "v1", "pods", create), r("", "v1", "pods", update), false},
		{r("", "v1", "pods", create), r("", "v1", "configmaps", create), false},
		{r("", "v1", "pods", create), r("apps", "v1", "pods", create), true},
		{r("apps", "v1", "deployments", create), r("extensions", "v1beta1", "deployments", create), true},
		{r("", "v1", "pods", create), r("*", "*", "*", anyOp), true},
		{r("", "v1", "pods", create), r("", "v1", "*/*", create), true},
		{r("", "v1", "pods/status", update), r("", "v1", "pods", update), false},
		{r("", "v1", "pods/status", update), r("", "v1", "pods/*", update), true},
		{r("", "v1", "pods", create), r("", "v1", "pods", del), false},
	} {
		if got := RulesOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("RulesOverlap(%v, %v) = %v", tc.a, tc.b, got)
		}
		if got := RulesOverlap(tc.b, tc.a); got != tc.want {
			t.Errorf("RulesOverlap(%v, %v) = %v, not symmetric", tc.b, tc.a, got)
		}
	}
}

// Labels and annotations alone are answered with the patch of what was
// set, not a difference of the objects: the members in the order they
// were created, escaped as JSON pointers, and the patched object is the
// mutated one.
func TestLabelPatchIsWrittenFromTheMutations(t *testing.T) {
	e := mutationEngine(t, testNamespaces,
		mutationPolicy("a", 0, match(), setLabels(false, "example.com/tier", "web", "team", "x")),
		mutationPolicy("b", 1, match(), setAnnotations(true, "note", "hi")))
	o := podObject("p", nil, "app")
	req := podRequest(t, admissionv1.Create, o, nil)
	res := e.Mutate(ctx, req)
	if res.Err() != nil {
		t.Fatal(res.Err())
	}
	b, _ := res.PatchJSON()
	want := `[{"op":"add","path":"/metadata/labels","value":{"example.com/tier":"web","team":"x"}},{"op":"add","path":"/metadata/annotations","value":{"note":"hi"}}]`
	o2 := podObject("p", map[string]string{"app": "x"}, "app")
	req2 := podRequest(t, admissionv1.Create, o2, nil)
	res2 := e.Mutate(ctx, req2)
	b2, _ := res2.PatchJSON()
	if want2 := `[{"op":"add","path":"/metadata/labels/example.com~1tier","value":"web"},{"op":"add","path":"/metadata/labels/team","value":"x"},{"op":"add","path":"/metadata/annotations","value":{"note":"hi"}}]`; string(b2) != want2 {
		t.Errorf("patch with labels\n%s\nwant\n%s", b2, want2)
	}
	if string(b) != want {
		t.Errorf("patch\n%s\nwant\n%s", b, want)
	}
	got := applyPatch(t, req.Object.Raw, res)
	m := got["metadata"].(map[string]any)
	if m["labels"].(map[string]any)["example.com/tier"] != "web" || m["annotations"].(map[string]any)["note"] != "hi" {
		t.Errorf("patched %v", m)
	}
}

// A webhook configuration covers a policy's rules when each of its
// resources, operations, groups and versions is in some rule.
func TestRulesCovered(t *testing.T) {
	r := func(resources []string, ops ...admissionregistrationv1.OperationType) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: resources}}
	}
	have := []admissionregistrationv1.RuleWithOperations{r([]string{"pods", "configmaps"}, create, update), r([]string{"secrets/*"}, del)}
	for _, tc := range []struct {
		want admissionregistrationv1.RuleWithOperations
		ok   bool
	}{
		{r([]string{"pods"}, create), true},
		{r([]string{"pods", "configmaps"}, create, update), true},
		{r([]string{"pods"}, del), false},
		{r([]string{"pods/status"}, create), false},
		{r([]string{"secrets/status"}, del), true},
		{r([]string{"services"}, create), false},
	} {
		if got := RulesCovered(have, []admissionregistrationv1.RuleWithOperations{tc.want}); got != tc.ok {
			t.Errorf("RulesCovered(%v) = %v", tc.want, got)
		}
	}
	if !RulesCovered([]admissionregistrationv1.RuleWithOperations{r([]string{"*/*"}, anyOp)}, []admissionregistrationv1.RuleWithOperations{r([]string{"pods/status"}, update)}) {
		t.Error("*/* does not cover a subresource")
	}
	if RulesCovered([]admissionregistrationv1.RuleWithOperations{r([]string{"*"}, anyOp)}, []admissionregistrationv1.RuleWithOperations{r([]string{"pods/status"}, update)}) {
		t.Error("* covers a subresource")
	}
}

// A paramKind without a paramRef stays on the webhook, which evaluates with
// params null: the API server resolves the kind before the match
// conditions, and one it cannot resolve (a CRD not installed yet, or
// deleted) would fail every request the rules match, those the operator's
// exclusions and PolicyExceptions exempt too.
func TestNativeParamKindWithoutRef(t *testing.T) {
	p := validationPolicy("p", admissionv1alpha1.ActionDeny, match(), noPrivileged)
	p.Spec.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: "example.com/v1", Kind: "NotInstalled"}
	_, _, err := NativeValidation(mustCompileValidation(t, p), nil, testExclusions)
	var ne *NotExpressibleError
	if !errors.As(err, &ne) || ne.Field != "spec.paramKind" {
		t.Fatalf("NativeValidation: %v, want not expressible at spec.paramKind", err)
	}
}

// The API server evaluates a policy's match conditions without the
// namespace, so namespaceObject is null there, in the variables they read
// too, where the webhook gives them the request's namespace: a condition
// that reads it, itself or through a variable, fails natively (every
// request rejected under Fail) and holds on the webhook. Such a policy
// stays on the webhook; one whose conditions read neither, or whose
// validations alone read the namespace, which the API server gives them,
// runs natively.
func TestNativeConditionsReadingTheNamespace(t *testing.T) {
	vars := []admissionregistrationv1.Variable{
		{Name: "labels", Expression: "namespaceObject.metadata.labels"},
		{Name: "team", Expression: "variables.labels.team"},
		{Name: "name", Expression: "object.metadata.name"},
	}
	req := podRequest(t, admissionv1.Create, podObject("p", nil, "app"), nil)
	for _, tc := range []struct {
		cond, validation string
		native           bool
	}{
		{"namespaceObject.metadata.labels.team == 'caribou'", "true", false},
		{"has(namespaceObject.metadata.labels)", "true", false},
		{"variables.team == 'caribou'", "true", false}, // through two variables
		{"object.spec.containers.exists(c, c.name == variables.labels['team'])", "true", false},
		{"request.namespace == 'caribou'", "variables.team == 'caribou'", true},
		{"variables.name == 'p'", "namespaceObject.metadata.labels.team == 'caribou'", true},
		{"object.spec.containers.all(c, c.name != '')", "true", true},
	} {
		t.Run(tc.cond, func(t *testing.T) {
			conds := []admissionregistrationv1.MatchCondition{{Name: "c", Expression: tc.cond}}
			vals := []admissionregistrationv1.Validation{{Expression: tc.validation, Message: "refused"}}
			// The API server, as it evaluates the generated policy.
			up := upstreamValidate(t, vars, conds, vals, req)
			upFails := slices.ContainsFunc(up.Decisions, func(d validating.PolicyDecision) bool { return d.Action == validating.ActionDeny })
			p := validationPolicy("p", admissionv1alpha1.ActionDeny, match(withConditions(tc.cond)), tc.validation)
			p.Spec.Variables = vars
			if res := validationEngine(t, testNamespaces, p).Validate(ctx, req); !res.Allowed() {
				t.Fatalf("the webhook refuses: %+v", res)
			}
			if upFails == tc.native {
				t.Fatalf("the API server refuses: %v, want %v (%+v)", upFails, !tc.native, up.Decisions)
			}
			_, _, err := NativeValidation(mustCompileValidation(t, p), nil, testExclusions)
			var ne *NotExpressibleError
			switch {
			case tc.native && err != nil:
				t.Fatalf("no native form: %v", err)
			case !tc.native && (!errors.As(err, &ne) || ne.Field != "spec.match.conditions[0].expression" || !strings.Contains(ne.Why, "namespaceObject")):
				t.Fatalf("NativeValidation: %v, want not expressible at spec.match.conditions[0].expression, naming namespaceObject", err)
			}
			t.Log(err)
			// A MutationPolicy's conditions alike.
			mp := mutationPolicy("m", 0, match(withConditions(tc.cond)), setLabels(false, "a", "b"))
			mp.Spec.Variables = vars
			if _, _, err := NativeMutation(mustCompileMutation(t, mp), nil, testExclusions); (err == nil) != tc.native {
				t.Fatalf("NativeMutation: %v", err)
			}
		})
	}
}

// What an expression reads is read from its AST, macros expanded, erring
// towards reading.
func TestExpressionReads(t *testing.T) {
	sc, _, _ := testCompiler().scope([]admissionregistrationv1.Variable{{Name: "a", Expression: "1"}}, false, fieldSpec().Child("variables"), environment.StoredExpressions)
	for _, tc := range []struct {
		text string
		want reads
	}{
		{"object.metadata.name == 'namespaceObject'", reads{}},
		{"request.namespace != '' && has(namespaceObject.metadata)", reads{namespaceObject: true}},
		{"variables.a + variables.b > variables.a", reads{variables: []string{"a", "b"}}},
		{"object.spec.containers.all(c, c.name == variables.a)", reads{variables: []string{"a"}}},
		{"variables.?a.orValue(0) > 0", reads{allVariables: true}},
		{"cel.bind(ns, namespaceObject, ns.metadata.name) != ''", reads{namespaceObject: true}},
		{"object.(", reads{namespaceObject: true, allVariables: true}},
	} {
		if got := sc.reads(tc.text); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: reads %+v, want %+v", tc.text, got, tc.want)
		}
	}
}

// upstreamJSONPatch applies a JSONPatch expression to object as the API
// server's MutatingAdmissionPolicy dispatcher does (dispatchOne: its
// JSONPatcher, with the API server's object interfaces, over the object as
// the API server holds it, typed for a built-in kind) and returns the
// patcher's error. The dispatcher answers a *StatusError as the admission
// decision, before any failurePolicy; any other error is the policy's, to
// its failurePolicy.
func upstreamJSONPatch(t *testing.T, expr string, object runtime.Object, gvr schema.GroupVersionResource) error {
	t.Helper()
	comp, err := plugincel.NewCompositedCompiler(environment.MustBaseEnvSet(environment.DefaultCompatibilityVersion()))
	if err != nil {
		t.Fatal(err)
	}
	eval := comp.CompileMutatingEvaluator(&patch.JSONPatchCondition{Expression: expr},
		plugincel.OptionalVariableDeclarations{HasAuthorizer: true, HasPatchTypes: true}, environment.StoredExpressions)
	gvk := object.GetObjectKind().GroupVersionKind()
	attrs := admission.NewAttributesRecord(object, nil, gvk, "caribou", "p", gvr, "", admission.Create, nil, false, &user.DefaultInfo{Name: "alice"})
	va := &admission.VersionedAttributes{Attributes: attrs, VersionedKind: gvk}
	va.VersionedObject.Set(object)
	_, err = patch.NewJSONPatcher(eval).Patch(ctx, patch.Request{
		MatchedResource: gvr, VersionedAttributes: va,
		ObjectInterfaces: admission.NewObjectInterfacesFromScheme(clientgoscheme.Scheme),
	}, RequestCostBudget)
	return err
}

// The API server decodes what a JSON patch makes strictly, into the Go
// type of a built-in kind, and answers an internal error, whatever the
// failurePolicy, when that fails: a patch writing a field the kind does not
// have rejects every request natively, where the webhook applies it as
// written and the API server drops the field. A custom resource left
// without a kind fails alike natively, and on the webhook under the
// policy's failurePolicy. So no JSON patch, computed or static, runs
// natively, and each says so.
func TestNativeJSONPatchIsDecodedStrictly(t *testing.T) {
	unknownField := `[JSONPatch{op: "add", path: "/spec/priorityClass", value: "high"}]`
	pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "caribou"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1.0"}}}}
	err := upstreamJSONPatch(t, unknownField, pod, corev1.SchemeGroupVersion.WithResource("pods"))
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("the API server's patcher: %v, want a StatusError, which no failurePolicy covers", err)
	}
	t.Log(err)
	p := mutationPolicy("m", 0, match(), jsonPatchExpr(unknownField))
	p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	res := mutationEngine(t, testNamespaces, p).Mutate(ctx, podRequest(t, admissionv1.Create, podObject("p", nil, "app"), nil))
	if res.Err() != nil || len(res.Errors) > 0 || len(res.Patch) == 0 {
		t.Fatalf("the webhook: err %v, errors %v, patch %v; want the patch applied", res.Err(), res.Errors, res.Patch)
	}

	noKind := `[JSONPatch{op: "remove", path: "/kind"}]`
	widget := map[string]any{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w", "namespace": "caribou"}}
	widgets := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	if err := upstreamJSONPatch(t, noKind, &unstructured.Unstructured{Object: widget}, widgets); !errors.As(err, &se) {
		t.Fatalf("the API server's patcher on a custom resource: %v, want a StatusError", err)
	}
	cr := mutationPolicy("cr", 0, match(withRules(resourceRule("example.com", "v1", []string{"widgets"}, anyOp))), jsonPatchExpr(noKind))
	cr.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	req := request{op: admissionv1.Create, group: "example.com", kind: "Widget", resource: "widgets", namespace: "caribou", name: "w", object: obj(t, widget)}
	if res := mutationEngine(t, testNamespaces, cr).Mutate(ctx, req.build()); res.Err() != nil || res.Rejection() != "" || len(res.WarningMessages()) != 1 {
		t.Fatalf("the webhook: err %v, rejection %q, warnings %v; want the policy skipped under Ignore", res.Err(), res.Rejection(), res.WarningMessages())
	}

	for _, m := range []admissionv1alpha1.Mutation{jsonPatchExpr(unknownField), jsonPatchExpr(noKind), jsonPatch(`[{"op":"add","path":"/spec/priorityClass","value":"high"}]`)} {
		for _, mp := range []*admissionv1alpha1.MutationPolicy{mutationPolicy("m", 0, match(), m), mutationPolicy("cr", 0, match(withRules(resourceRule("example.com", "v1", []string{"widgets"}, anyOp))), m)} {
			_, _, err := NativeMutation(mustCompileMutation(t, mp), nil, testExclusions)
			var ne *NotExpressibleError
			if !errors.As(err, &ne) || ne.Field != "spec.mutations[0].jsonPatch" {
				t.Errorf("%s %+v: %v, want not expressible at spec.mutations[0].jsonPatch", mp.Name, m.JSONPatch, err)
			}
		}
	}
}
