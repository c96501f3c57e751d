package admission

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/cel-go/cel"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apiserver/pkg/admission"
	plugincel "k8s.io/apiserver/pkg/admission/plugin/cel"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/cel/environment"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/admission/admissiontest"
)

// libraryExpressions use every function library of the API server's
// admission environment, and the language features whose evaluation a
// program option or a decorator changes (optional values, regex
// constants, comprehensions, cel.bind).
var libraryExpressions = []string{
	// Optional values: or and orValue are evaluated lazily.
	"object.?metadata.?labels.?app.orValue('none')",
	"object.?spec.?missing.orValue(0) == 0",
	"optional.none().or(optional.of(object.metadata.name)).value()",
	"optional.of(1).or(optional.of(1 / 0)).value()",
	"object.?spec.?containers[0].?name.hasValue()",
	"{?'a': optional.none(), 'b': 1}.size()",
	// Regular expressions, constant and not.
	"object.metadata.name.matches('^web-[0-9]+$')",
	"object.spec.containers[0].image.find('[a-z]+\\\\.example')",
	"object.spec.containers[0].image.findAll('[0-9]')",
	"object.spec.containers.all(c, c.image.matches('^' + 'registry'))",
	// Strings.
	"object.spec.containers.map(c, c.name).join(',').split(',').size()",
	"object.metadata.name.upperAscii().lowerAscii().replace('-', '_').trim()",
	"object.metadata.name.substring(1, 3) + object.metadata.name.charAt(0)",
	"object.metadata.name.indexOf('-') + object.metadata.name.lastIndexOf('b')",
	"'%s has %d containers'.format([object.metadata.name, object.spec.containers.size()])",
	"strings.quote(object.metadata.name)",
	"object.metadata.name.reverse()",
	// Lists and sets.
	"[3, 1, 2].sort() == [1, 2, 3] && [1, 2].isSorted() && [1, 2, 3].sum() == 6",
	"object.spec.containers.map(c, c.name).indexOf('sidecar')",
	"[[1], [2, 3]].flatten() == [1, 2, 3]",
	"object.spec.containers.map(c, c.name).distinct().size()",
	"lists.range(3) == [0, 1, 2]",
	"object.spec.containers.map(c, c.name).slice(1, 2)",
	"sets.contains(object.spec.containers.map(c, c.name), ['app'])",
	"sets.intersects(object.spec.containers.map(c, c.name), ['x', 'sidecar'])",
	// Comprehensions of one and two variables.
	"object.spec.containers.exists_one(c, c.name == 'app')",
	"object.metadata.labels.all(k, v, k.size() > 0 && v.size() > 0)",
	"object.spec.containers.exists(i, c, i == 1 && c.name == 'sidecar')",
	"object.metadata.labels.transformMap(k, v, v + '!')",
	"object.spec.containers.transformList(i, c, string(i) + c.name)",
	"object.spec.containers.sortBy(c, c.name).map(c, c.name)",
	// Kubernetes libraries.
	"quantity(object.spec.containers[0].resources.limits.memory).compareTo(quantity('1Gi')) < 0",
	"isQuantity('1.5') && quantity('1.5').isInteger() == false",
	"url('https://registry.example:5000/v2/').getHost() + url('https://a.example/x?y=1').getQuery()['y'][0]",
	"isURL(object.spec.containers[0].image)",
	"ip('10.0.0.1').family() == 4 && cidr('10.0.0.0/8').containsIP(ip('10.1.2.3'))",
	"isIP('::1') && ip('::1').isLoopback() && cidr('10.0.0.0/8').prefixLength() == 8",
	"format.dns1123Label().validate(object.metadata.name).hasValue() == false",
	"format.named('dns1123Subdomain').value().validate('Not_Valid').hasValue()",
	"semver('1.2.3').isGreaterThan(semver('1.2.0')) && isSemver('1.0.0')",
	"object.metadata.name.matches('web') ? 'yes' : 'no'",
	// Time, types, errors.
	"timestamp('2026-11-27T10:00:00Z') + duration('1h') > timestamp('2026-11-27T10:30:00Z')",
	"timestamp('2026-11-27T10:00:00Z').getHours()",
	"duration('90m').getMinutes()",
	"type(object.spec.containers) == list && dyn(object.spec.priority) == 10",
	"object.spec.containers[7]",
	"object.spec.missing.field",
	"int(object.metadata.name)",
	"1 / (object.spec.containers.size() - 3)",
	"request.userInfo.groups.exists(g, g == 'dev') && request.kind.kind == 'Pod'",
	"namespaceObject.metadata.?labels.orValue({}).size() >= 0",
}

// apiServerEvaluate evaluates compiled expressions for req exactly as the
// API server's admission plugins do: plugincel's ConditionEvaluator.ForInput
// over the unstructured objects, with the request's whole budget. It
// returns the results and the budget left.
func apiServerEvaluate(t testing.TB, req *admissionv1.AdmissionRequest, compiled []plugincel.CompilationResult) ([]plugincel.EvaluationResult, int64, error) {
	t.Helper()
	objU := &unstructured.Unstructured{}
	if err := objU.UnmarshalJSON(req.Object.Raw); err != nil {
		t.Fatal(err)
	}
	var oldU *unstructured.Unstructured
	var oldObj runtime.Object
	if len(req.OldObject.Raw) > 0 {
		oldU = &unstructured.Unstructured{}
		if err := oldU.UnmarshalJSON(req.OldObject.Raw); err != nil {
			t.Fatal(err)
		}
		oldObj = oldU
	}
	attrs := admission.NewAttributesRecord(objU, oldObj, schema.GroupVersionKind(req.Kind), req.Namespace, req.Name,
		schema.GroupVersionResource(req.Resource), req.SubResource, admission.Operation(req.Operation),
		nil, false, &user.DefaultInfo{Name: req.UserInfo.Username, Groups: req.UserInfo.Groups})
	va := &admission.VersionedAttributes{Attributes: attrs, VersionedKind: schema.GroupVersionKind(req.Kind)}
	va.VersionedObject.Set(objU)
	if oldU != nil {
		va.VersionedOldObject.Set(oldU)
	}
	want, remaining, err := plugincel.NewCondition(compiled).ForInput(ctx, va,
		plugincel.CreateAdmissionRequest(attrs, req.Resource, req.Kind), plugincel.OptionalVariableBindings{},
		plugincel.CreateNamespaceObject(testNamespaces[req.Namespace]), RequestCostBudget)
	return want, remaining, err
}

// TestExpressionsAsTheAPIServer evaluates every function library's
// expressions and the adversarial ones on a small pod and on a pod of 128
// containers of 128 mounts, one expression per request, both ways:
// Portcullis's and the API server's own (apiServerEvaluate). Results,
// errors (the per-call limit's included, with their messages) and the
// budget left must be the same.
func TestExpressionsAsTheAPIServer(t *testing.T) {
	small := admissiontest.WithSizes(benchPod(), 10, 2)
	large := admissiontest.WithSizes(admissiontest.MountsPod(128, 128), 128*128, 3)
	exprs := append(append(slices.Clone(libraryExpressions), admissiontest.Adversarial...), costlyLiteral())
	c := testCompiler()
	limited := 0
	for name, o := range map[string]map[string]any{"a pod": small, "128 containers of 128 mounts": large} {
		req := podRequest(t, admissionv1.Create, o, nil)
		for _, e := range exprs {
			p, ferr := c.compile(nil, e, cel.AnyType, environment.StoredExpressions)
			if ferr != nil {
				t.Errorf("%s: %v", e, ferr)
				continue
			}
			want, remaining, wantErr := apiServerEvaluate(t, req, []plugincel.CompilationResult{p.CompilationResult})
			r := NewRequest(req, testNamespaces)
			start := time.Now()
			got, err := r.evaluate(ctx, []*program{p}, nil)
			elapsed := time.Since(start)
			if err != nil || wantErr != nil {
				// The whole evaluation stopped (the budget spent in one
				// call): the same error as the API server's.
				if err == nil || wantErr == nil || err.Error() != wantErr.Error() {
					t.Errorf("%s, %s: error %v, the API server's %v", name, e, err, wantErr)
				}
				t.Logf("%s, %s: stopped the evaluation after %v: %v", name, e, elapsed, err)
				continue
			}
			sameResults(t, []string{name + ": " + e}, got, want)
			if r.RemainingBudget() != remaining {
				t.Errorf("%s, %s: remaining budget %d, the API server's %d", name, e, r.RemainingBudget(), remaining)
			}
			if got[0].Error != nil && strings.Contains(got[0].Error.Error(), "cost limit exceeded") {
				limited++
				t.Logf("%s, %s: stopped at the per-call limit after %v", name, e, elapsed)
			}
		}
	}
	// Not vacuous: several expressions do reach the per-call limit.
	if limited < 5 {
		t.Errorf("%d evaluations stopped at the per-call limit, want at least 5", limited)
	}
}

// The expression the issue was found with: on a valid pod of 128
// containers of 128 mounts, stopped at the per-call limit with the API
// server's error, promptly, and a cancelled context stops it too.
func TestFlattenStopsAtTheLimit(t *testing.T) {
	req := podRequest(t, admissionv1.Create, admissiontest.MountsPod(128, 128), nil)
	e := validationEngine(t, testNamespaces, validationPolicy("mounts", admissionv1alpha1.ActionDeny, match(), admissiontest.FlattenMounts))
	res := e.Validate(ctx, req)
	if err := res.Failed(); err == nil || !strings.Contains(err.Error(), "operation cancelled: actual cost limit exceeded") || res.Allowed() {
		t.Fatalf("Failed() = %v, allowed %v; want the API server's cost limit error, denied", err, res.Allowed())
	}
	cctx, cancel := contextCancelled()
	defer cancel()
	if cres := e.Validate(cctx, req); cres.Failed() == nil {
		t.Fatal("no error with a cancelled context")
	}
}

// Expressions whose least cost CEL cannot bound, or whose estimate is over
// the per-call limit, are accepted at apply as the API server accepts them
// in a ValidatingAdmissionPolicy; they fail, if they do, when they run.
func TestNoCostRefusalAtApply(t *testing.T) {
	for _, e := range []string{
		"lists.range(object.spec.priority).all(i, i >= 0)",
		"[object.spec.containers].flatten(object.spec.depth).size() > 0",
		costlyLiteral(),
	} {
		if errs := ValidateValidationPolicy(testCompiler(), validationPolicy("v", "", match(), e)); len(errs) > 0 {
			t.Errorf("%s: refused at apply: %v", e, errs)
		}
	}
}

// TestValidateConcurrently validates requests of several sizes from
// several goroutines at once and checks each gets the result it gets
// alone. Run with -race.
func TestValidateConcurrently(t *testing.T) {
	ps := benchValidationPolicies(20)
	var reqs []*admissionv1.AdmissionRequest
	for _, n := range []int{1, 3, 30, 300} {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("c%d", i)
		}
		o := podObject("p", map[string]string{"app": "web"}, names...)
		if n == 30 {
			spec(o)["containers"].([]any)[7].(map[string]any)["securityContext"] = map[string]any{"privileged": true}
		}
		reqs = append(reqs, podRequest(t, admissionv1.Create, o, nil))
	}
	want := make([]int, len(reqs))
	for i, req := range reqs {
		want[i] = len(validationEngine(t, testNamespaces, ps...).Validate(ctx, req).Denials)
	}
	e := validationEngine(t, testNamespaces, ps...)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 20 {
				i := (g + k) % len(reqs)
				if got := len(e.Validate(ctx, reqs[i]).Denials); got != want[i] {
					t.Errorf("request %d: %d denials, alone %d", i, got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

// FuzzEvaluateAsTheAPIServer looks for an expression and an object on
// which Portcullis's evaluation differs from the API server's.
func FuzzEvaluateAsTheAPIServer(f *testing.F) {
	for i, e := range append(slices.Clone(benchValidations), append(libraryExpressions, admissiontest.Adversarial...)...) {
		f.Add(e, uint8(i%7), uint16(i*37))
	}
	c := testCompiler()
	f.Fuzz(func(t *testing.T, e string, containers uint8, text uint16) {
		p, ferr := c.compile(nil, e, cel.AnyType, environment.StoredExpressions)
		if ferr != nil {
			return
		}
		names := make([]string, containers%16)
		for i := range names {
			names[i] = fmt.Sprintf("c%d", i)
		}
		o := podObject("web-0", map[string]string{"app": strings.Repeat("x", int(text%512))}, names...)
		spec(o)["priority"] = int(text % 1024)
		req := podRequest(t, admissionv1.Update, o, benchPod())
		want, remaining, wantErr := apiServerEvaluate(t, req, []plugincel.CompilationResult{p.CompilationResult})
		r := NewRequest(req, testNamespaces)
		got, err := r.evaluate(ctx, []*program{p}, nil)
		if err != nil || wantErr != nil {
			if err == nil || wantErr == nil || err.Error() != wantErr.Error() {
				t.Errorf("%s: error %v, the API server's %v", e, err, wantErr)
			}
			return
		}
		sameResults(t, []string{e}, got, want)
		if r.RemainingBudget() != remaining {
			t.Errorf("%s: remaining budget %d, the API server's %d", e, r.RemainingBudget(), remaining)
		}
	})
}

// Only an expression with a comprehension, where alone CEL checks its
// context, is evaluated with the context; every macro that expands to
// one counts, and one that does not (has) does not. With a cancelled
// context, a comprehension stops (CEL looks every 100 iterations, as the
// API server configures it) and an expression without one is evaluated
// as ContextEval evaluates it.
func TestOnlyComprehensionsWaitOnTheContext(t *testing.T) {
	c := testCompiler()
	req := podRequest(t, admissionv1.Create, benchPod(), nil)
	cctx, cancel := contextCancelled()
	defer cancel()
	for e, comprehends := range map[string]bool{
		"has(object.metadata.labels) && 'app' in object.metadata.labels": false,
		"object.?metadata.?labels.?app.orValue('none') != ''":            false,
		"[1, 2, 3].size() == 3 && {'a': 1}['a'] == 1":                    false,
		"object.metadata.name.startsWith('p') || 1 / 0 == 1":             false,
		"lists.range(1000).all(i, i >= 0)":                               true,
		"!lists.range(1000).exists(i, i < 0)":                            true,
		"lists.range(1000).exists_one(i, i == 0)":                        true,
		"lists.range(1000).map(i, i * 2).size() >= 0":                    true,
		"lists.range(1000).filter(i, i >= 0).size() >= 0":                true,
		"lists.range(1000).all(i, v, i >= 0 && v >= 0)":                  true,
		"has(object.spec) && lists.range(1000).all(i, has(object.spec))": true,
	} {
		p, ferr := c.compile(nil, e, cel.BoolType, environment.StoredExpressions)
		if ferr != nil {
			t.Errorf("%s: %v", e, ferr)
			continue
		}
		if p.noComprehension == comprehends {
			t.Errorf("%s: noComprehension %v", e, p.noComprehension)
		}
		got, err := NewRequest(req, testNamespaces).evaluate(cctx, []*program{p}, nil)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		interrupted := got[0].Error != nil && strings.Contains(got[0].Error.Error(), "operation interrupted")
		if interrupted != comprehends {
			t.Errorf("%s with a cancelled context: %+v, interrupted %v", e, got[0], interrupted)
		}
	}
}
