package admission

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/utils/ptr"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/admission/admissiontest"
)

// noPrivileged is the design's example validation.
const noPrivileged = admissiontest.NoPrivileged

func privilegedPod(t *testing.T) *admissionv1.AdmissionRequest {
	return podRequest(t, admissionv1.Create, podObject("p", nil, "app", "privileged"), nil)
}

func TestValidateActions(t *testing.T) {
	withMessage := func(p *admissionv1alpha1.ValidationPolicy, msg string) *admissionv1alpha1.ValidationPolicy {
		p.Spec.Validations[0].Message = msg
		return p
	}
	e := validationEngine(t, testNamespaces,
		withMessage(validationPolicy("deny-privileged", admissionv1alpha1.ActionDeny, match(), noPrivileged), "privileged containers are not allowed"),
		withMessage(validationPolicy("default-is-deny", "", match(), "object.spec.containers.size() < 2"), "at most one container"),
		withMessage(validationPolicy("warn-privileged", admissionv1alpha1.ActionWarn, match(), noPrivileged), "privileged containers are discouraged"),
		withMessage(validationPolicy("audit-privileged", admissionv1alpha1.ActionAudit, match(), noPrivileged), "privileged container seen"),
		validationPolicy("passes", admissionv1alpha1.ActionDeny, match(), "true"),
		validationPolicy("other-resource", admissionv1alpha1.ActionDeny, match(withRules(resourceRule("apps", "v1", []string{"deployments"}, anyOp))), "false"),
	)

	res := e.Validate(ctx, privilegedPod(t))
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"audit-privileged", "default-is-deny", "deny-privileged", "passes", "warn-privileged"}; !slices.Equal(res.Matched, want) {
		t.Errorf("Matched = %v, want %v", res.Matched, want)
	}
	wantDenials := []Violation{
		{Policy: "default-is-deny", Index: 0, Message: "at most one container"},
		{Policy: "deny-privileged", Index: 0, Message: "privileged containers are not allowed"},
	}
	if !reflect.DeepEqual(res.Denials, wantDenials) {
		t.Errorf("Denials = %v, want %v", res.Denials, wantDenials)
	}
	if res.Allowed() {
		t.Error("Allowed() with denials")
	}
	if got, want := res.DenyMessage(), `ValidationPolicy "default-is-deny" denied request: at most one container; ValidationPolicy "deny-privileged" denied request: privileged containers are not allowed`; got != want {
		t.Errorf("DenyMessage() = %q, want %q", got, want)
	}
	if got, want := res.WarningMessages(), []string{`Validation failed for ValidationPolicy "warn-privileged": privileged containers are discouraged`}; !slices.Equal(got, want) {
		t.Errorf("WarningMessages() = %q, want %q", got, want)
	}
	ann := res.AuditAnnotations()
	var failures []map[string]any
	if err := json.Unmarshal([]byte(ann[AuditKeyValidationFailure]), &failures); err != nil || len(ann) != 1 {
		t.Fatalf("AuditAnnotations() = %v (%v)", ann, err)
	}
	if want := []map[string]any{{"policy": "audit-privileged", "expressionIndex": float64(0), "message": "privileged container seen"}}; !reflect.DeepEqual(failures, want) {
		t.Errorf("audit failures = %v, want %v", failures, want)
	}

	// A pod that breaks nothing.
	res = e.Validate(ctx, podRequest(t, admissionv1.Create, podObject("p", nil, "app"), nil))
	if res.Err() != nil || !res.Allowed() || len(res.Warnings)+len(res.Audits) > 0 || res.AuditAnnotations() != nil || res.WarningMessages() != nil {
		t.Errorf("a compliant pod: %+v", res)
	}
}

func TestValidateEveryValidation(t *testing.T) {
	p := validationPolicy("three", admissionv1alpha1.ActionDeny, match(), "false", "true", "1 > 2")
	res := validationEngine(t, testNamespaces, p).Validate(ctx, privilegedPod(t))
	want := []Violation{
		{Policy: "three", Index: 0, Message: "failed expression: false"},
		{Policy: "three", Index: 2, Message: "failed expression: 1 > 2"},
	}
	if !reflect.DeepEqual(res.Denials, want) {
		t.Errorf("Denials = %v, want %v", res.Denials, want)
	}
}

func TestValidationMessages(t *testing.T) {
	tests := []struct {
		name       string
		v          admissionv1alpha1.Validation
		want       string
		wantErrors bool
	}{
		{"message", admissionv1alpha1.Validation{Expression: "false", Message: "  no  "}, "no", false},
		{"default message", admissionv1alpha1.Validation{Expression: " 1 == 2 "}, "failed expression: 1 == 2", false},
		{"messageExpression", admissionv1alpha1.Validation{Expression: "false", Message: "static", MessageExpression: "'pod ' + object.metadata.name + ' has ' + string(object.spec.containers.size()) + ' containers'"}, "pod p has 2 containers", false},
		{"messageExpression sees namespaceObject and request", admissionv1alpha1.Validation{Expression: "false", MessageExpression: "request.userInfo.username + ' in ' + namespaceObject.metadata.labels.team"}, "alice in caribou", false},
		{"empty messageExpression result", admissionv1alpha1.Validation{Expression: "false", Message: "static", MessageExpression: "'  '"}, "static", false},
		{"multi-line messageExpression result", admissionv1alpha1.Validation{Expression: "false", Message: "static", MessageExpression: "'a\\nb'"}, "static", false},
		{"messageExpression too long", admissionv1alpha1.Validation{Expression: "false", Message: "static", MessageExpression: "'" + strings.Repeat("x", 6000) + "'"}, "static", false},
		{"messageExpression error", admissionv1alpha1.Validation{Expression: "false", Message: "static", MessageExpression: "string(object.metadata.missing)"}, "static", false},
		{"messageExpression error, no message", admissionv1alpha1.Validation{Expression: "false", MessageExpression: "string(object.metadata.missing)"}, "failed expression: false", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validationPolicy("v", admissionv1alpha1.ActionDeny, match())
			p.Spec.Validations = []admissionv1alpha1.Validation{tt.v}
			res := validationEngine(t, testNamespaces, p).Validate(ctx, privilegedPod(t))
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			if len(res.Denials) != 1 || res.Denials[0].Message != tt.want {
				t.Errorf("Denials = %v, want one with message %q", res.Denials, tt.want)
			}
		})
	}
}

func TestValidationErrors(t *testing.T) {
	failing := "object.spec.nothing.size() == 0" // no such key: an evaluation error
	tests := []struct {
		name        string
		action      admissionv1alpha1.Action
		match       admissionv1alpha1.Match
		ignore      bool // failurePolicy Ignore
		wantDenial  bool // the error denies, naming the policy
		wantWarning bool
		wantAudit   bool
	}{
		{"Deny policy: denied", admissionv1alpha1.ActionDeny, match(), false, true, false, false},
		{"Warn policy: a warning", admissionv1alpha1.ActionWarn, match(), false, false, true, false},
		{"Audit policy: an audit entry", admissionv1alpha1.ActionAudit, match(), false, false, false, true},
		{"condition error, Deny policy: denied", admissionv1alpha1.ActionDeny, match(withConditions("object.spec.nothing == 1")), false, true, false, false},
		{"Deny policy, failurePolicy Ignore: skipped", admissionv1alpha1.ActionDeny, match(), true, false, false, false},
		{"Warn policy, failurePolicy Ignore: skipped", admissionv1alpha1.ActionWarn, match(), true, false, false, false},
		{"condition error, failurePolicy Ignore: skipped", admissionv1alpha1.ActionDeny, match(withConditions("object.spec.nothing == 1")), true, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broken := validationPolicy("broken", tt.action, tt.match, "true", failing)
			if tt.ignore {
				broken.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
			}
			e := validationEngine(t, testNamespaces, broken, validationPolicy("fine", admissionv1alpha1.ActionDeny, match(), "false"))
			res := e.Validate(ctx, privilegedPod(t))
			if len(res.Errors) != 1 || res.Errors[0].Policy != "broken" {
				t.Fatalf("Errors = %v, want one for broken", res.Errors)
			}
			// A policy's error is its failure policy's: never the call's.
			if err := res.Err(); err != nil {
				t.Errorf("Err() = %v", err)
			}
			var brokenDenied bool
			for _, d := range res.Denials {
				if d.Policy == "broken" {
					brokenDenied = d.Error && strings.Contains(d.Message, "failurePolicy Fail")
				}
			}
			if brokenDenied != tt.wantDenial {
				t.Errorf("Denials = %v, want broken's error denied %v", res.Denials, tt.wantDenial)
			}
			if got := len(res.Warnings) == 1 && res.Warnings[0].Error; got != tt.wantWarning {
				t.Errorf("Warnings = %v, want an error warning %v", res.Warnings, tt.wantWarning)
			}
			if got := len(res.Audits) == 1 && res.Audits[0].Error; got != tt.wantAudit {
				t.Errorf("Audits = %v, want an error audit %v", res.Audits, tt.wantAudit)
			}
			// The other policy is still evaluated.
			if !slices.ContainsFunc(res.Denials, func(v Violation) bool { return v.Policy == "fine" && !v.Error }) {
				t.Errorf("Denials = %v, want fine's", res.Denials)
			}
		})
	}
}

// bigListRequest is a pod-like object with a list of n integers.
func bigListRequest(t testing.TB, n int) *admissionv1.AdmissionRequest {
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	o := podObject("p", nil, "app")
	spec(o)["items"] = items
	return podRequest(t, admissionv1.Create, o, nil)
}

func TestCostLimits(t *testing.T) {
	t.Run("one expensive expression stops at the per-call limit", func(t *testing.T) {
		// Quadratic in the list: far beyond the per-call limit.
		expensive := "object.spec.items.all(x, object.spec.items.all(y, x == y || x != y))"
		e := validationEngine(t, testNamespaces, validationPolicy("quadratic", admissionv1alpha1.ActionDeny, match(), expensive))
		start := time.Now()
		// 600 items: 360,000 inner iterations, several times the limit.
		res := e.Validate(ctx, bigListRequest(t, 600))
		// Only a guard against a hang: the race detector makes CEL many
		// times slower.
		if elapsed := time.Since(start); elapsed > time.Minute {
			t.Errorf("took %v", elapsed)
		}
		err := res.Failed()
		if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
			t.Fatalf("Failed() = %v, want the cost limit exceeded", err)
		}
		// Under failurePolicy Fail the error denies, naming the policy.
		if len(res.Denials) != 1 || !res.Denials[0].Error || res.Denials[0].Policy != "quadratic" {
			t.Errorf("Denials = %v, want quadratic's error", res.Denials)
		}
	})

	t.Run("each policy has its own budget", func(t *testing.T) {
		// A string search: its cost is its length, and it takes
		// microseconds. One evaluation is far under the per-call limit;
		// a policy of 101 of them is over its budget, as a binding of the
		// API server's would be, and the policy after it is unaffected.
		linear := "!object.spec.text.contains('zz')"
		o := podObject("p", nil, "app")
		spec(o)["text"] = strings.Repeat("a", 1_000_000)
		req := podRequest(t, admissionv1.Create, o, nil)
		r := NewRequest(req, testNamespaces)
		var probe ValidateResult
		mustCompileValidation(t, validationPolicy("probe", "", match(), linear)).evaluate(ctx, r, &probe)
		spent := RequestCostBudget - r.RemainingBudget()
		if len(probe.Errors) > 0 || spent <= 0 || spent > ExpressionCostLimit {
			t.Fatalf("probe: charged %d, errors %v; want one under the per-call limit", spent, probe.Errors)
		}
		exprs := make([]string, int(RequestCostBudget/spent)+1)
		for i := range exprs {
			exprs[i] = linear
		}
		heavy := validationPolicy("a-heavy", admissionv1alpha1.ActionDeny, match(), exprs...)
		for i := range heavy.Spec.Validations {
			heavy.Spec.Validations[i].Message = "heavy"
		}
		light := validationPolicy("b-light", admissionv1alpha1.ActionDeny, match(), linear, "false")
		light.Spec.Validations[1].Message = "light was evaluated"
		res := validationEngine(t, testNamespaces, heavy, light).Validate(ctx, req)
		var heavyErr, lightDenied bool
		for _, d := range res.Denials {
			heavyErr = heavyErr || (d.Policy == "a-heavy" && d.Error && strings.Contains(d.Message, "budget"))
			lightDenied = lightDenied || (d.Policy == "b-light" && d.Message == "light was evaluated")
		}
		if !heavyErr || !lightDenied {
			t.Fatalf("Denials = %v: want a-heavy over its budget, and b-light evaluated with a budget of its own", res.Denials)
		}
	})

	t.Run("a context cancelled stops evaluation", func(t *testing.T) {
		expensive := "object.spec.items.all(x, object.spec.items.all(y, x == y || x != y))"
		e := validationEngine(t, testNamespaces, validationPolicy("quadratic", admissionv1alpha1.ActionDeny, match(), expensive))
		cctx, cancel := contextCancelled()
		defer cancel()
		res := e.Validate(cctx, bigListRequest(t, 600))
		if res.Failed() == nil {
			t.Fatal("no error with a cancelled context")
		}
	})
}

func TestCELCompileErrors(t *testing.T) {
	v := func(e string) admissionv1alpha1.Validation { return admissionv1alpha1.Validation{Expression: e} }
	tests := []struct {
		name        string
		validations []admissionv1alpha1.Validation
		action      admissionv1alpha1.Action
		wantField   string
		wantText    string
	}{
		{"no validations", nil, "", "spec.validations", "Required"},
		{"empty expression", []admissionv1alpha1.Validation{v("true"), v("  ")}, "", "spec.validations[1].expression", "Required"},
		{"syntax", []admissionv1alpha1.Validation{v("object.spec.containers.all(c,")}, "", "spec.validations[0].expression", "compilation failed"},
		{"undeclared variable", []admissionv1alpha1.Validation{v("objet.spec == null")}, "", "spec.validations[0].expression", "undeclared reference to 'objet'"},
		{"type error", []admissionv1alpha1.Validation{v("request.name + 1 == 'a'")}, "", "spec.validations[0].expression", "no matching overload"},
		{"not a bool", []admissionv1alpha1.Validation{v("true"), v("request.name")}, "", "spec.validations[1].expression", "must evaluate to bool"},
		{"unknown request field", []admissionv1alpha1.Validation{v("request.uid == ''")}, "", "spec.validations[0].expression", "undefined field 'uid'"},
		{"no authorizer", []admissionv1alpha1.Validation{v("authorizer.group('').resource('pods').check('get').allowed()")}, "", "spec.validations[0].expression", "undeclared reference to 'authorizer'"},
		{"no params", []admissionv1alpha1.Validation{v("params == null")}, "", "spec.validations[0].expression", "undeclared reference to 'params'"},
		{"no variables", []admissionv1alpha1.Validation{v("variables.x")}, "", "spec.validations[0].expression", "undeclared reference to 'variables'"},
		{"messageExpression type", []admissionv1alpha1.Validation{{Expression: "true", MessageExpression: "1"}}, "", "spec.validations[0].messageExpression", "must evaluate to string"},
		{"messageExpression syntax", []admissionv1alpha1.Validation{{Expression: "true", MessageExpression: "'a' +"}}, "", "spec.validations[0].messageExpression", "compilation failed"},
		{"message on two lines", []admissionv1alpha1.Validation{{Expression: "true", Message: "a\nb"}}, "", "spec.validations[0].message", "line breaks"},
		{"blank message", []admissionv1alpha1.Validation{{Expression: "true", Message: "  "}}, "", "spec.validations[0].message", "non-empty"},
		{"multi-line expression without message", []admissionv1alpha1.Validation{v("true &&\n true")}, "", "spec.validations[0].message", "message must be specified"},
		{"bad action", []admissionv1alpha1.Validation{v("true")}, "Reject", "spec.action", "Unsupported value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validationPolicy("v", tt.action, match())
			p.Spec.Validations = tt.validations
			errs := ValidateValidationPolicy(testCompiler(), p)
			if !hasFieldError(errs, tt.wantField, tt.wantText) {
				t.Errorf("errors = %v, want one at %s containing %q", errs, tt.wantField, tt.wantText)
			}
			if c, cerrs := CompileValidationPolicy(testCompiler(), p); c == nil || len(cerrs) == 0 {
				t.Errorf("CompileValidationPolicy = %v, %v: want the policy (broken, or with validations that error) and its errors", c, cerrs)
			}
		})
	}

	if errs := ValidateValidationPolicy(nil, validationPolicy("v", "", match(), "true")); !hasFieldError(errs, "spec.validations[0].expression", "no CEL compiler") {
		t.Errorf("without a compiler: %v", errs)
	}
}

// costlyLiteral is an expression over literal lists whose minimum cost is
// above the per-call limit: a triple comprehension over 120 elements. The
// API server accepts it in a ValidatingAdmissionPolicy and stops it when
// it runs; so does Portcullis (TestExpressionsAsTheAPIServer).
func costlyLiteral() string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range 120 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, i)
	}
	b.WriteByte(']')
	l := b.String()
	return l + ".map(a, " + l + ".map(b, " + l + ".map(c, a + b + c))).size() > 0"
}

func TestCELVariables(t *testing.T) {
	old := podObject("p", map[string]string{"app": "web"}, "app")
	newer := podObject("p", map[string]string{"app": "web", "v": "2"}, "app", "sidecar")
	rq := request{op: admissionv1.Update, kind: "Pod", resource: "pods", namespace: "caribou", name: "p",
		object: obj(t, newer), oldObject: obj(t, old), options: []byte(`{"kind":"UpdateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl"}`),
		username: "bob", groups: []string{"dev", "system:authenticated"}}
	equivalent := metav1.GroupVersionResource{Group: "", Version: "v1beta1", Resource: "pods"}
	rq.requestResourceOverride = &equivalent
	exprs := []string{
		"object.metadata.labels.v == '2'",
		"oldObject.spec.containers.size() == 1",
		"object.spec.containers.size() > oldObject.spec.containers.size()",
		"request.operation == 'UPDATE'",
		"request.kind.group == '' && request.kind.version == 'v1' && request.kind.kind == 'Pod'",
		"request.resource.resource == 'pods' && !has(request.subResource)",
		"request.requestResource.version == 'v1beta1'",
		"request.name == 'p' && request.namespace == 'caribou'",
		"request.userInfo.username == 'bob' && 'dev' in request.userInfo.groups",
		"request.dryRun == false",
		"request.options.fieldManager == 'kubectl'",
		"namespaceObject.metadata.name == 'caribou' && namespaceObject.metadata.labels.env == 'prod'",
		"!has(namespaceObject.metadata.deletionTimestamp)",
		// The API server's libraries: quantity, regex, URLs, sets, strings, lists.
		"quantity('500m').isLessThan(quantity('1'))",
		"object.metadata.name.matches('^[a-z]+$')",
		"url('https://example.com/x').getHost() == 'example.com'",
		"sets.contains(['a', 'b'], ['a'])",
		"'a,b'.split(',').size() == 2",
		"[3, 1, 2].sort() == [1, 2, 3]",
		"optional.of(1).hasValue()",
	}
	for _, ex := range exprs {
		t.Run(ex, func(t *testing.T) {
			p := validationPolicy("v", admissionv1alpha1.ActionDeny, match(), ex)
			if errs := ValidateValidationPolicy(testCompiler(), p); len(errs) > 0 {
				t.Fatalf("ValidateValidationPolicy: %v", errs)
			}
			res := validationEngine(t, testNamespaces, p).Validate(ctx, rq.build())
			if err := res.Err(); err != nil {
				t.Fatal(err)
			}
			if len(res.Denials) > 0 {
				t.Errorf("false: %v", res.Denials)
			}
		})
	}

	// A cluster-scoped object and a Namespace have no namespaceObject.
	nsReq := request{op: admissionv1.Create, kind: "Namespace", resource: "namespaces", namespace: "caribou", name: "caribou",
		object: obj(t, map[string]any{"metadata": map[string]any{"name": "caribou"}})}
	p := validationPolicy("v", admissionv1alpha1.ActionDeny, match(withRules(resourceRule("", "v1", []string{"namespaces"}, anyOp))), "namespaceObject == null")
	if res := validationEngine(t, testNamespaces, p).Validate(ctx, nsReq.build()); res.Err() != nil || len(res.Denials) > 0 {
		t.Errorf("Namespace: %+v", res)
	}
}

// A namespaced request whose namespace the cache does not know yet is not
// evaluated as cluster-scoped (namespaceObject null): the API server reads
// through to storage, and would fail the request if that failed; here,
// with no API call on the request path, reading namespaceObject is an
// error of the policy, which its failure policy decides.
func TestNamespaceObjectOfANamespaceNotInTheCache(t *testing.T) {
	rq := request{op: admissionv1.Create, kind: "Pod", resource: "pods", namespace: "fresh", name: "p", object: obj(t, podObject("p", nil, "app"))}
	expr := "namespaceObject == null || !('locked' in namespaceObject.metadata.labels)"
	for _, fp := range []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Fail, admissionregistrationv1.Ignore} {
		p := validationPolicy("locked-ns", admissionv1alpha1.ActionDeny, match(), expr)
		p.Spec.FailurePolicy = &fp
		res := validationEngine(t, testNamespaces, p).Validate(ctx, rq.build())
		if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), `namespace "fresh" is not in the namespace cache yet`) {
			t.Fatalf("%s: errors %v, want the namespace named", fp, res.Errors)
		}
		if denied := len(res.Denials) > 0; denied != (fp == admissionregistrationv1.Fail) {
			t.Errorf("%s: denials %v", fp, res.Denials)
		}
	}
	// A policy that does not read namespaceObject is not held up, and one
	// whose answer the namespace could not change still answers.
	for _, ex := range []string{"object.metadata.name == 'p'", "true || namespaceObject.metadata.name == 'x'"} {
		res := validationEngine(t, testNamespaces, validationPolicy("other", admissionv1alpha1.ActionDeny, match(), ex)).Validate(ctx, rq.build())
		if len(res.Errors) > 0 || len(res.Denials) > 0 {
			t.Errorf("%s: errors %v, denials %v", ex, res.Errors, res.Denials)
		}
	}
}

func TestNotReady(t *testing.T) {
	ve := NewValidationEngine(testNamespaces)
	vr := NewValidationRegistry(ve)
	me := NewMutationEngine(testNamespaces)
	mr := NewMutationRegistry(me)
	vr.Set("deny", mustCompileValidation(t, validationPolicy("deny", "", match(), "false")))
	mr.Set("label", mustCompileMutation(t, mutationPolicy("label", 0, match(), setLabels(false, "a", "b"))))

	req := privilegedPod(t)
	vres := ve.Validate(ctx, req)
	mres := me.Mutate(ctx, req)
	if !vres.NotReady || !errors.Is(vres.Err(), ErrNotReady) || len(vres.Denials) > 0 {
		t.Errorf("Validate before MarkReady = %+v", vres)
	}
	if !mres.NotReady || !errors.Is(mres.Err(), ErrNotReady) || mres.Patch != nil {
		t.Errorf("Mutate before MarkReady = %+v", mres)
	}
	if ve.Ready() || me.Ready() {
		t.Error("Ready before MarkReady")
	}

	vr.MarkReady()
	mr.MarkReady()
	if vres := ve.Validate(ctx, req); vres.NotReady || vres.Err() != nil || len(vres.Denials) != 1 {
		t.Errorf("Validate after MarkReady = %+v", vres)
	}
	if mres := me.Mutate(ctx, req); mres.NotReady || mres.Err() != nil || mres.Patch == nil {
		t.Errorf("Mutate after MarkReady = %+v", mres)
	}
}

func TestValidateDeleteAndConnect(t *testing.T) {
	protect := validationPolicy("protect", admissionv1alpha1.ActionDeny,
		match(withRules(resourceRule("", "v1", []string{"pods"}, del))),
		"object == null && (!has(oldObject.metadata.labels) || !('protected' in oldObject.metadata.labels))")
	protect.Spec.Validations[0].MessageExpression = "'pod ' + oldObject.metadata.name + ' is protected'"
	noShell := validationPolicy("no-shell", admissionv1alpha1.ActionDeny,
		match(withRules(resourceRule("", "v1", []string{"pods/exec"}, connect))),
		"!object.command.exists(c, c == 'sh' || c == 'bash')")
	noShell.Spec.Validations[0].Message = "no interactive shells"
	e := validationEngine(t, testNamespaces, protect, noShell)

	del := func(labels map[string]string) *admissionv1.AdmissionRequest {
		return podRequest(t, admissionv1.Delete, nil, podObject("web-0", labels, "app"))
	}
	if res := e.Validate(ctx, del(map[string]string{"protected": "yes"})); res.Err() != nil || res.DenyMessage() != `ValidationPolicy "protect" denied request: pod web-0 is protected` {
		t.Errorf("delete of a protected pod: %+v", res)
	}
	if res := e.Validate(ctx, del(nil)); res.Err() != nil || !res.Allowed() || !slices.Equal(res.Matched, []string{"protect"}) {
		t.Errorf("delete of a pod: %+v", res)
	}

	exec := func(command ...string) *admissionv1.AdmissionRequest {
		return request{op: admissionv1.Connect, kind: "PodExecOptions", resource: "pods", subresource: "exec", namespace: "caribou", name: "web-0",
			object: obj(t, map[string]any{"kind": "PodExecOptions", "apiVersion": "v1", "command": command, "stdin": true})}.build()
	}
	if res := e.Validate(ctx, exec("sh")); res.Err() != nil || res.DenyMessage() != `ValidationPolicy "no-shell" denied request: no interactive shells` {
		t.Errorf("exec sh: %+v", res)
	}
	if res := e.Validate(ctx, exec("ls", "/")); res.Err() != nil || !res.Allowed() || !slices.Equal(res.Matched, []string{"no-shell"}) {
		t.Errorf("exec ls: %+v", res)
	}
}

func TestNoNamespaceLister(t *testing.T) {
	e := validationEngine(t, nil,
		validationPolicy("cel", admissionv1alpha1.ActionDeny, match(), "namespaceObject == null"),
		validationPolicy("selector", admissionv1alpha1.ActionDeny, match(withNamespaceSelector(labelSelector("team", "caribou"))), "true"),
	)
	res := e.Validate(ctx, privilegedPod(t))
	if len(res.Denials) != 1 || res.Denials[0].Policy != "selector" || len(res.Errors) != 1 || res.Errors[0].Policy != "selector" || !strings.Contains(res.Errors[0].Error(), "no namespace lister") {
		t.Errorf("without a namespace lister: %+v", res)
	}
}

func TestMalformedObject(t *testing.T) {
	req := request{op: admissionv1.Create, kind: "Pod", resource: "pods", namespace: "caribou", name: "p", object: []byte(`{"metadata":`)}.build()
	vres := validationEngine(t, testNamespaces, validationPolicy("v", "", match(), "true")).Validate(ctx, req)
	if err := vres.Failed(); err == nil || !strings.Contains(err.Error(), "decoding the request's object") || vres.Allowed() {
		t.Errorf("Validate: Failed() = %v, allowed %v", err, vres.Allowed())
	}
	mres := mutationEngine(t, testNamespaces, mutationPolicy("m", 0, match(), setLabels(false, "a", "b"))).Mutate(ctx, req)
	if msg := mres.Rejection(); !strings.Contains(msg, "decoding the request's object") || mres.Patch != nil {
		t.Errorf("Mutate: %+v", mres)
	}
	// A request no policy matches is not decoded at all.
	other := request{op: admissionv1.Create, kind: "ConfigMap", resource: "configmaps", namespace: "caribou", name: "c", object: []byte(`{`)}.build()
	if vres := validationEngine(t, testNamespaces, validationPolicy("v", "", match(), "true")).Validate(ctx, other); vres.Err() != nil {
		t.Errorf("unmatched: %v", vres.Err())
	}
}

// A policy served broken keeps a match at least as wide as it meant: a
// rule with a field that does not compile is widened there, never
// dropped, so its failure policy applies to what it was for; under Ignore
// it lets the request through.
func TestBrokenPolicyMatchesWhatItMeant(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule admissionv1alpha1.ResourceRule
	}{
		{"a bad resource", admissionv1alpha1.ResourceRule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods", "pods/a/b"}, Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}},
		{"a bad operation", admissionv1alpha1.ResourceRule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, "PATCH"}}},
		{"a bad group", admissionv1alpha1.ResourceRule{APIGroups: []string{"", "apps/v1"}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := validationPolicy("broken", admissionv1alpha1.ActionDeny, admissionv1alpha1.Match{Resources: []admissionv1alpha1.ResourceRule{tc.rule}}, "false")
			c, errs := CompileValidationPolicy(testCompiler(), p)
			if len(errs) == 0 || c == nil || c.Err() == nil {
				t.Fatalf("compiled: %v, %v", c, errs)
			}
			if len(c.Rules()) == 0 {
				t.Fatal("a broken policy has no webhook rules: the API server would not send what it matches")
			}
			e := NewValidationEngine(testNamespaces)
			r := NewValidationRegistry(e)
			r.Set("broken", c)
			r.MarkReady()
			res := e.Validate(ctx, privilegedPod(t))
			if res.Allowed() || len(res.Denials) != 1 || !strings.Contains(res.Denials[0].Message, "not loaded") {
				t.Fatalf("under Fail: %+v", res)
			}
			if !slices.ContainsFunc(e.Snapshot().Rules(), func(ru admissionregistrationv1.RuleWithOperations) bool {
				return slices.Contains(ru.Resources, "pods") || slices.Contains(ru.Resources, "*/*")
			}) {
				t.Errorf("webhook rules %v do not cover pods", e.Snapshot().Rules())
			}
			p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
			c, _ = CompileValidationPolicy(testCompiler(), p)
			r.Set("broken", c)
			if res := e.Validate(ctx, privilegedPod(t)); !res.Allowed() {
				t.Fatalf("under Ignore: %+v", res)
			}
		})
	}
}

// A validation whose expression does not compile (stored past the
// operator's validation, or after an upgrade) is an error of that
// validation only, as in the API server: the others still run, and the
// broken one is handled by the failure policy whenever it is evaluated.
func TestOneValidationDoesNotCompile(t *testing.T) {
	p := validationPolicy("partly", admissionv1alpha1.ActionDeny, match(), "false", "object.spec.containers.all(c,", "true")
	p.Spec.Validations[0].Message = "the first validation ran"
	p.Spec.Validations[2].MessageExpression = "'unterminated"
	c, errs := CompileValidationPolicy(testCompiler(), p)
	if c == nil || c.Err() != nil || len(errs) != 2 {
		t.Fatalf("CompileValidationPolicy = %v, %v: want it served, with the two expression errors", c, errs)
	}
	e := NewValidationEngine(testNamespaces)
	r := NewValidationRegistry(e)
	r.Set("partly", c)
	r.MarkReady()
	res := e.Validate(ctx, privilegedPod(t))
	if len(res.Denials) != 2 || res.Denials[0].Message != "the first validation ran" || !res.Denials[1].Error || !strings.Contains(res.Denials[1].Message, "compilation error") {
		t.Fatalf("Denials = %+v", res.Denials)
	}
	p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	c, _ = CompileValidationPolicy(testCompiler(), p)
	r.Set("partly", c)
	if res := e.Validate(ctx, privilegedPod(t)); len(res.Denials) != 1 || res.Denials[0].Message != "the first validation ran" {
		t.Fatalf("under Ignore: %+v", res.Denials)
	}
}
