package admission

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/cel-go/cel"
	celtypes "github.com/google/cel-go/common/types"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apiserver/pkg/cel/environment"
	"k8s.io/apiserver/pkg/cel/library"
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

// TestFastProgramsAsTheAPIServer evaluates expressions of every library
// both ways, untracked where the worst case fits and as the API server
// does, and checks that they agree.
func TestFastProgramsAsTheAPIServer(t *testing.T) {
	o := benchPod()
	spec(o)["priority"] = 10
	req := request{op: admissionv1.Create, kind: "Pod", resource: "pods", namespace: "caribou", name: "web-0",
		object: obj(t, o), username: "bob", groups: []string{"dev"}}.build()
	c := testCompiler()
	var untracked int
	for _, e := range libraryExpressions {
		p, ferr := c.compile(nil, e, cel.AnyType, environment.StoredExpressions)
		if ferr != nil {
			t.Errorf("%s: %v", e, ferr)
			continue
		}
		fast := NewRequest(req, testNamespaces)
		got, err := fast.evaluate(ctx, []*program{p}, nil)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		tracked := NewRequest(req, testNamespaces)
		want, err := tracked.evaluate(ctx, []*program{{CompilationResult: p.CompilationResult}}, nil)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		sameResults(t, []string{e}, got, want)
		if worst, ok := p.boundedCost(fast.activation.sizeBound()); ok {
			untracked++
			if spent := RequestCostBudget - fast.RemainingBudget(); spent != int64(worst) {
				t.Errorf("%s: charged %d, want its worst case %d", e, spent, worst)
			}
		}
	}
	// Not vacuous: most expressions have a bounded worst case.
	if untracked < len(libraryExpressions)*3/4 {
		t.Errorf("%d of %d expressions ran untracked", untracked, len(libraryExpressions))
	}
}

// TestWorstCaseBoundsTheCost checks the premise of the untracked
// programs: for inputs of every shape, an expression's estimated worst
// case is at least what the API server's cost tracker counts.
func TestWorstCaseBoundsTheCost(t *testing.T) {
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprintf("c%03d", i)
	}
	manyContainers := podObject("many", map[string]string{"app": "web"}, many...)
	longStrings := benchPod()
	meta(longStrings)["name"] = strings.Repeat("web-", 5000)
	meta(longStrings)["labels"] = map[string]any{"app": strings.Repeat("x", 60000)}
	manyLabels := benchPod()
	labels := map[string]any{}
	for i := range 2000 {
		labels[fmt.Sprintf("k%04d", i)] = "v"
	}
	meta(manyLabels)["labels"] = labels
	nested := benchPod()
	deep := map[string]any{"leaf": []any{"a", "b"}}
	for range 40 {
		deep = map[string]any{"next": deep, "items": []any{1, 2, 3}}
	}
	spec(nested)["deep"] = deep

	exprs := append([]string{
		noPrivileged,
		"object.spec.containers.all(c, object.spec.containers.exists(d, d.name == c.name))",
		"object.metadata.name.contains('zz') || object.metadata.name.startsWith('x')",
		"object.metadata.labels.all(k, object.metadata.labels[k].size() < 100000)",
		"object.spec.containers.map(c, c.name + c.image).join('').size()",
		"object.spec.containers.filter(c, c.name.matches('^c[0-9]+$')).size()",
		"string(object.spec).size()",
		"object.spec.containers.map(c, [c.name, c.image]).flatten().size()",
		"object.metadata.name.split('-').all(s, s == '' || s == 'web')",
		"object.metadata.labels.map(k, k).sort().size()",
		"object.spec.containers.all(c, c.missing.field == 1 || true)",
		"object.metadata.labels.all(k, object.metadata.labels[k] == 'x' || true)",
		"object.spec.containers.exists(c, c.nope[3] == 1 || c.name == '')",
		"object.spec.containers.all(c, object.spec.containers.all(d, d.x.y == 1 || true))",
		"object.spec.containers.all(c, isURL(c.image) || true)",
		"object.metadata.labels.all(k, object.metadata.labels.all(j, object.metadata.labels[j] == object.metadata.labels[k] || true))",
	}, benchValidations...)
	exprs = append(exprs, libraryExpressions...)

	c := testCompiler()
	for name, o := range map[string]map[string]any{
		"a pod": benchPod(), "300 containers": manyContainers, "long strings": longStrings,
		"2000 labels": manyLabels, "deep nesting": nested,
	} {
		t.Run(name, func(t *testing.T) {
			req := podRequest(t, admissionv1.Update, o, benchPod())
			r := NewRequest(req, testNamespaces)
			act, err := r.celInputs()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range exprs {
				p, ferr := c.compile(nil, e, cel.AnyType, environment.StoredExpressions)
				if ferr != nil {
					t.Fatalf("%s: %v", e, ferr)
				}
				if !worstCaseBoundsTheCost(t, e, p, act) {
					t.Fatalf("%s: no actual cost", e)
				}
			}
		})
	}
}

// TestUntrackedLimits checks that an expression whose worst case does not
// fit runs tracked, so that the limits stop it as in the API server.
func TestUntrackedLimits(t *testing.T) {
	c := testCompiler()
	quadratic, ferr := c.compile(nil, "object.spec.items.all(x, object.spec.items.all(y, x == y || x != y))", cel.BoolType, environment.StoredExpressions)
	if ferr != nil {
		t.Fatal(ferr)
	}
	small, large := NewRequest(bigListRequest(t, 10), nil), NewRequest(bigListRequest(t, 600), nil)
	for _, r := range []*Request{small, large} {
		if _, err := r.celInputs(); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := quadratic.boundedCost(small.activation.sizeBound()); !ok {
		t.Errorf("over 10 items: not bounded within the per-call limit")
	}
	if worst, ok := quadratic.boundedCost(large.activation.sizeBound()); ok {
		t.Errorf("over 600 items: bounded by %d, within the per-call limit", worst)
	}
	// Estimated once per size class, unbounded or not.
	for _, r := range []*Request{small, large} {
		if quadratic.worst[sizeClass(r.activation.sizeBound())].Load() == 0 {
			t.Errorf("the worst case for inputs of size %d is not kept", r.activation.sizeBound())
		}
	}

	// A request's budget: an expression whose worst case is more than is
	// left runs tracked, and is charged what it spent.
	r := NewRequest(bigListRequest(t, 10), nil)
	got, err := r.evaluate(ctx, []*program{quadratic}, nil)
	if err != nil || len(got) != 1 || got[0].EvalResult != celtypes.True {
		t.Fatalf("evaluate = %v, %v", got, err)
	}
	worst := RequestCostBudget - r.RemainingBudget()
	r = NewRequest(bigListRequest(t, 10), nil)
	r.budget = worst - 1
	got, err = r.evaluate(ctx, []*program{quadratic}, nil)
	if err != nil || len(got) != 1 || got[0].EvalResult != celtypes.True {
		t.Fatalf("evaluate with less than the worst case left = %v, %v", got, err)
	}
	if spent := worst - 1 - r.RemainingBudget(); spent <= 0 || spent >= worst {
		t.Errorf("charged %d with less than the worst case (%d) left, want what it spent", spent, worst)
	}
}

// TestUntrackedConcurrently validates requests of several sizes from
// several goroutines at once, the worst cases being estimated as they
// come, and checks each gets the result it gets alone. Run with -race.
func TestUntrackedConcurrently(t *testing.T) {
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

// apiServerFunctions are the functions of the API server's admission
// environment this package was checked against.
const apiServerFunctions = `!_ -_ @in @not_strictly_false @sortByAssociatedKeys _!=_ _%_ _&&_ _*_ _+_ _-_ _/_ _<=_ _<_ _==_ _>=_ _>_ _?._ _?_:_ _[?_] _[_] __not_strictly_false__ _in_ _||_ add allowed asApproximateFloat asInteger bool bytes cel.@mapInsert charAt check cidr compareTo contains containsCIDR containsIP distinct double duration dyn endsWith error errored family fieldSelector find findAll first flatten format format.byte format.date format.datetime format.dns1035Label format.dns1035LabelPrefix format.dns1123Label format.dns1123LabelPrefix format.dns1123Subdomain format.dns1123SubdomainPrefix format.labelValue format.named format.qualifiedName format.uri format.uuid getDate getDayOfMonth getDayOfWeek getDayOfYear getEscapedPath getFullYear getHost getHostname getHours getMilliseconds getMinutes getMonth getPort getQuery getScheme getSeconds group hasValue in includes indexOf int ip ip.isCanonical isCIDR isGlobalUnicast isGreaterThan isIP isInteger isLessThan isLinkLocalMulticast isLinkLocalUnicast isLoopback isQuantity isSemver isSorted isURL isUnspecified join labelSelector last lastIndexOf lists.range lowerAscii major masked matches max min minor name namespace optional.none optional.of optional.ofNonZeroValue optional.unwrap or orValue patch path prefixLength quantity reason replace resource reverse semver serviceAccount sets.contains sets.equivalent sets.intersects sign size slice sort split startsWith string strings.quote sub subresource substring sum timestamp trim type uint unwrapOpt upperAscii url validate value`

// TestUntrackedEnvironmentIsCurrent is an alarm for upgrades of
// k8s.io/apiserver and cel-go. untrackedEnv copies the environment's
// functions and types, but the program options of its libraries only as
// they are today (optional values' lazy or, regex constants). A new
// library may bring functions and program options: if this fails, read
// the new libraries' ProgramOptions, update untrackedEnv and
// untrackedProgramOptions, add expressions that use the new functions to
// libraryExpressions, and update apiServerFunctions.
func TestUntrackedEnvironmentIsCurrent(t *testing.T) {
	var got []string
	for name := range testCompiler().costEnvs.StoredExpressionsEnv().Functions() {
		got = append(got, name)
	}
	want := strings.Fields(apiServerFunctions)
	slices.Sort(got)
	var added, removed []string
	for _, n := range got {
		if !slices.Contains(want, n) {
			added = append(added, n)
		}
	}
	for _, n := range want {
		if !slices.Contains(got, n) {
			removed = append(removed, n)
		}
	}
	if len(added)+len(removed) > 0 {
		t.Errorf("the API server's CEL functions changed: new %v, gone %v", added, removed)
	}
}

// FuzzWorstCaseBoundsTheCost looks for an expression and an object for
// which the tracked cost exceeds the worst case an untracked evaluation
// would be charged.
func FuzzWorstCaseBoundsTheCost(f *testing.F) {
	for i, e := range append(slices.Clone(benchValidations), libraryExpressions...) {
		f.Add(e, uint8(i%7), uint16(i*37))
	}
	c := testCompiler()
	f.Fuzz(func(t *testing.T, e string, containers uint8, text uint16) {
		p, ferr := c.compile(nil, e, cel.AnyType, environment.StoredExpressions)
		if ferr != nil {
			return
		}
		names := make([]string, containers%64)
		for i := range names {
			names[i] = fmt.Sprintf("c%d", i)
		}
		o := podObject("web-0", map[string]string{"app": strings.Repeat("x", int(text%4096))}, names...)
		spec(o)["priority"] = int(text)
		r := NewRequest(podRequest(t, admissionv1.Update, o, benchPod()), testNamespaces)
		act, err := r.celInputs()
		if err != nil {
			t.Fatal(err)
		}
		worstCaseBoundsTheCost(t, e, p, act)
	})
}

// worstCaseBoundsTheCost evaluates p tracked and checks that the worst case
// it would be charged untracked is at least what it cost; false when the
// tracker reported no cost.
func worstCaseBoundsTheCost(t *testing.T, e string, p *program, act *activation) bool {
	t.Helper()
	_, details, _ := p.Program.ContextEval(ctx, act)
	if details == nil || details.ActualCost() == nil {
		return false
	}
	actual := *details.ActualCost()
	size := uint64(1) << sizeClass(act.sizeBound())
	if est, err := p.env.EstimateCost(p.ast, &library.CostEstimator{SizeEstimator: inputSize(size)}); err == nil && actual > est.Max {
		// Where CEL's estimate falls short: the margin covers it.
		t.Logf("%s: estimated %d, cost %d (%.2f times)", e, est.Max, actual, float64(actual)/float64(max(est.Max, 1)))
	}
	if worst := p.worstCase(size); worst < actual {
		t.Errorf("%s: worst case %d, but it cost %d", e, worst, actual)
	}
	return true
}
