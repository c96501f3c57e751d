package policytest

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	admission "github.com/portcullis-io/portcullis/internal/admission"
)

// The samples' own suite passes: every phase, parameters, exceptions and
// a CEL applyConfiguration, with the engines the webhooks serve.
func TestSamplesSuite(t *testing.T) {
	suites, err := Load("../../config/samples/tests")
	if err != nil {
		t.Fatal(err)
	}
	results, err := Run(context.Background(), suites)
	if err != nil {
		t.Fatal(err)
	}
	phases := map[string]int{}
	for _, r := range results {
		phases[r.Phase]++
		if !r.Passed {
			t.Errorf("%s: %s: got %s: %v", r.Suite, r.Case, r.Got, r.Failures)
		}
	}
	for _, p := range []string{PhaseAuthentication, PhaseAuthorization, PhaseAdmission} {
		if phases[p] == 0 {
			t.Errorf("no %s case ran", p)
		}
	}
}

// write makes a suite directory of files.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const labelPolicy = `apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: stamp}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
  mutations:
  - setLabels: {stamped: "yes"}
`

const secretToken = "s3cret-token-value-never-printed-0123"

const tokenObjects = `apiVersion: v1
kind: Secret
metadata: {name: alice-token}
stringData: {token: ` + secretToken + `}
---
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: alice}
spec:
  user: {username: alice, groups: [ops]}
  secretRef: {name: alice-token, key: token}
`

func runDir(t *testing.T, dir string) []Result {
	t.Helper()
	suites, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	results, err := Run(context.Background(), suites)
	if err != nil {
		t.Fatal(err)
	}
	return results
}

// A broken expectation fails its case, with what was got and a diff of
// the object, in every format; the token never appears in any of them.
func TestBrokenExpectationsFailReadably(t *testing.T) {
	dir := write(t, map[string]string{
		"policy.yaml": labelPolicy,
		"tokens.yaml": tokenObjects,
		"test.yaml": `apiVersion: cli.portcullis.io/v1alpha1
kind: Test
metadata: {name: broken}
cases:
- name: wrong label
  admission:
    object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: default}}
  expect:
    allowed: true
    object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: default, labels: {stamped: "no"}}}
- name: right label
  admission:
    object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: default}}
  expect:
    object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: default, labels: {stamped: "yes"}}}
- name: wrong user
  authentication: {tokenFrom: {name: alice-token, key: token}}
  expect: {authenticated: true, user: {username: bob}}
- name: wrong decision
  authorization: {request: alice/get/pods, namespace: default}
  expect: {decision: Allow}
`,
	})
	results := runDir(t, dir)
	if n := Failed(results); n != 3 {
		t.Fatalf("%d failed, want 3: %+v", n, results)
	}
	byName := map[string]Result{}
	for _, r := range results {
		byName[r.Case] = r
	}
	if f := strings.Join(byName["wrong label"].Failures, "\n"); !strings.Contains(f, `-   "stamped": "no"`) || !strings.Contains(f, `+   "stamped": "yes"`) {
		t.Errorf("the object diff does not show the label:\n%s", f)
	}
	if f := strings.Join(byName["wrong user"].Failures, "\n"); !strings.Contains(f, `user.username: got "alice", want "bob"`) {
		t.Errorf("wrong user: %s", f)
	}
	if f := strings.Join(byName["wrong decision"].Failures, "\n"); !strings.Contains(f, "decision: got NoOpinion, want Allow") {
		t.Errorf("wrong decision: %s", f)
	}
	for _, format := range []string{FormatText, FormatJSON, FormatJUnit} {
		var b bytes.Buffer
		if err := Write(&b, format, results); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), secretToken) {
			t.Errorf("%s output contains the token", format)
		}
		switch format {
		case FormatJSON:
			var v struct{ Passed, Failed int }
			if err := json.Unmarshal(b.Bytes(), &v); err != nil || v.Passed != 1 || v.Failed != 3 {
				t.Errorf("json: %v %+v", err, v)
			}
		case FormatJUnit:
			var v junitSuites
			if err := xml.Unmarshal(b.Bytes(), &v); err != nil || v.Tests != 4 || v.Failures != 3 || len(v.Suites) != 1 || len(v.Suites[0].Cases) != 4 {
				t.Errorf("junit: %v %+v", err, v)
			}
		case FormatText:
			if !strings.Contains(b.String(), "1 passed, 3 failed") || !strings.Contains(b.String(), "FAIL  admission     wrong label") {
				t.Errorf("text:\n%s", b.String())
			}
		}
	}
}

// expectationPolicies are what TestEachExpectationFails runs against:
// for ConfigMaps a label set, a validation that needs it (so it passes
// only on the mutated object), a Deny and a Warn by name, and two sets of
// patches that settle on an object as sent that does not fit the schema
// but, applied again to what they produce, fail (a-number, b-strings) or
// change it (c-number, d-reads, e-strings); a validation that cannot
// be evaluated for Secrets; a Deny and a condition that cannot be
// evaluated for alice; and carol's token with every field of a user.
const expectationPolicies = labelPolicy + `---
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: needs-stamp}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
  validations:
  - {expression: "has(object.metadata.labels) && 'stamped' in object.metadata.labels", message: not stamped}
---
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: refuses}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
  validations:
  - {expression: "object.metadata.name != 'refused'", message: the name refused is refused}
---
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: warns}
spec:
  action: Warn
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
  validations:
  - {expression: "object.metadata.name != 'warned'", message: the name warned is discouraged}
---
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: breaks}
spec:
  failurePolicy: Ignore
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [secrets], operations: [CREATE]}]
  validations: [{expression: "object.data.missing == 'x'", message: m}]
---
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: a-number}
spec:
  order: 1
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
    objectSelector: {matchLabels: {passes: twice}}
  mutations:
  - mergePatch: {data: {b: 2}}
---
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: b-strings}
spec:
  order: 2
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
    objectSelector: {matchLabels: {passes: twice}}
  mutations:
  - mergePatch: {data: {a: "1", b: "2"}}
---
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: c-number}
spec:
  order: 1
  failurePolicy: Ignore
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
    objectSelector: {matchLabels: {passes: change}}
  mutations:
  - mergePatch: {data: {b: 2}}
---
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: d-reads}
spec:
  order: 2
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
    objectSelector: {matchLabels: {passes: change}}
    conditions: [{name: b-is-a-string, expression: "object.data.b == '2'"}]
  mutations:
  - setAnnotations: {b: string}
---
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: e-strings}
spec:
  order: 3
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
    objectSelector: {matchLabels: {passes: change}}
  mutations:
  - mergePatch: {data: {a: "1", b: "2"}}
---
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: no-secrets}
spec:
  effect: Deny
  subjects: [{kind: User, name: alice}]
  rules: [{apiGroups: [""], resources: [secrets], verbs: ["*"]}]
---
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: conditional}
spec:
  effect: Allow
  subjects: [{kind: User, name: alice}]
  rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
  conditions: [{expression: "request.extra['missing'][0] == 'x'", message: m}]
---
apiVersion: v1
kind: Secret
metadata: {name: carol-token}
stringData: {token: carol-token-value-0123456789abcdef}
---
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: carol}
spec:
  user: {username: carol, uid: "1001", groups: [ops], extra: {team: [caribou]}}
  secretRef: {name: carol-token, key: token}
`

// Each expectation the runner reads, and each check it makes of its own,
// fails a case that breaks it with a message naming what differed; the
// cases without a failure are the same inputs expected right, so that
// what fails is the expectation and nothing else.
func TestEachExpectationFails(t *testing.T) {
	const (
		carol   = "authentication: {tokenFrom: {name: carol-token, key: token}}"
		nobody  = "authentication: {token: not-a-token-anyone-holds-0000}"
		plain   = "admission: {object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}}"
		refused = "admission: {object: {apiVersion: v1, kind: ConfigMap, metadata: {name: refused}}}"
		warned  = "admission: {object: {apiVersion: v1, kind: ConfigMap, metadata: {name: warned}}}"
		secret  = "admission: {object: {apiVersion: v1, kind: Secret, metadata: {name: s}, data: {key: c2VjcmV0}}}"
		twice   = "admission: {object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c, labels: {passes: twice}}, data: {a: 1}}}"
		changes = "admission: {object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c, labels: {passes: change}}, data: {a: 1}}}"
		warning = `"Validation failed for ValidationPolicy \"warns\": the name warned is discouraged"`
		denial  = `ValidationPolicy \"refuses\" denied request: the name refused is refused`
	)
	for _, tc := range []struct {
		name, input, expect string
		// want are the case's failures, each the start of the one at
		// its index; none: the case passes.
		want []string
	}{
		{"authenticated", carol, "{authenticated: true}", nil},
		{"authenticated, broken", carol, "{authenticated: false}", []string{"authenticated: got true, want false"}},
		{"not authenticated, broken", nobody, "{authenticated: true}", []string{"authenticated: got false, want true"}},
		{"user of no token", nobody, "{user: {username: carol}}", []string{`user: not authenticated, want "carol"`}},
		{"user", carol, `{user: {username: carol, uid: "1001", groups: [ops], extra: {team: [caribou]}}}`, nil},
		{"username, broken", carol, "{user: {username: bob}}", []string{`user.username: got "carol", want "bob"`}},
		{"uid, broken", carol, `{user: {uid: "1002"}}`, []string{`user.uid: got "1001", want "1002"`}},
		{"groups, broken", carol, "{user: {groups: [devs]}}", []string{"user.groups: got [ops], want [devs]"}},
		{"no groups, broken", carol, "{user: {groups: []}}", []string{"user.groups: got [ops], want []"}},
		{"extra, broken", carol, "{user: {extra: {team: [other]}}}", []string{"user.extra: got map[team:[caribou]], want map[team:[other]]"}},
		{"no extra, broken", carol, "{user: {extra: {}}}", []string{"user.extra: got map[team:[caribou]], want map[]"}},

		{"decision", "authorization: {request: alice/get/pods}", "{decision: NoOpinion}", nil},
		{"decision, broken", "authorization: {request: alice/get/pods}", "{decision: Allow}", []string{"decision: got NoOpinion, want Allow"}},
		{"reason", "authorization: {request: alice/get/secrets}", "{decision: Deny, reasonContains: no-secrets}", nil},
		{"reason, broken", "authorization: {request: alice/get/secrets}", "{decision: Deny, reasonContains: another-policy}", []string{`reason: got "denied by AccessPolicy \"no-secrets\"", want it to contain "another-policy"`}},
		{"evaluation error", "authorization: {request: alice/get/configmaps}", "{errorContains: missing}", nil},
		{"evaluation error, broken", "authorization: {request: alice/get/configmaps}", "{errorContains: another error}", []string{`error: got "AccessPolicy \"conditional\": cel evaluation error: expression 'request.extra['missing'][0] == 'x'' resulted in error: no such key: missing", want it to contain "another error"`}},
		{"no evaluation error, broken", "authorization: {request: alice/get/pods}", "{errorContains: missing}", []string{`error: none, want one containing "missing"`}},

		{"allowed", plain, "{allowed: true}", nil},
		{"allowed, broken", plain, "{allowed: false}", []string{"allowed: got true, want false"}},
		{"denied", refused, "{allowed: false, messageContains: refused is refused}", nil},
		{"denied, broken", refused, "{allowed: true}", []string{"allowed: got false, want true"}},
		{"message, broken", refused, "{allowed: false, messageContains: another reason}", []string{`message: got "` + denial + `", want it to contain "another reason"`}},
		{"warnings", warned, `{warnings: [` + warning + `]}`, nil},
		{"warnings, broken", warned, "{warnings: [another warning]}", []string{`warnings: got [` + warning + `], want ["another warning"]`}},
		{"no warnings, broken", warned, "{warnings: []}", []string{`warnings: got [` + warning + `], want []`}},
		{"no warnings", plain, "{warnings: []}", nil},
		{"object", plain, `{object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: default, labels: {stamped: "yes"}}}}`, nil},
		{"object, broken", plain, `{object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: default, labels: {stamped: "no"}}}}`,
			[]string{"object: the admitted object differs (- want, + got):\n"}},
		{"policy error", secret, `{allowed: true, errorContains: "ValidationPolicy breaks"}`, nil},
		{"policy error, broken", secret, "{allowed: true, errorContains: another policy}", []string{`errors: (not reported for a Secret: it may quote its data), want one containing "another policy"`}},
		{"no policy error, broken", plain, "{allowed: true, errorContains: breaks}", []string{`error: none, want one containing "breaks"`}},
		// needs-stamp denies what stamp has not labelled.
		{"validation after mutation, broken", plain, "{allowed: false, messageContains: not stamped}",
			[]string{"allowed: got true, want false", `message: got "", want it to contain "not stamped"`}},
		// a-number's data.b: 2 passes only while the object as sent does
		// not fit the schema, which it fits once b-strings is applied.
		{"second pass fails", twice, "{allowed: true}",
			[]string{`mutations applied again to what they produced fail: MutationPolicy "a-number" could not be applied (failurePolicy Fail): leaves the object unfit for the ConfigMap schema`}},
		// c-number is skipped the second time, so d-reads sees a string.
		{"second pass changes the object", changes, "{allowed: true}",
			[]string{"mutations are not idempotent: applied again to what they produced, they change it:\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, map[string]string{
				"policy.yaml": expectationPolicies,
				"test.yaml": "apiVersion: cli.portcullis.io/v1alpha1\nkind: Test\nmetadata: {name: t}\ncases:\n- name: c\n  " +
					tc.input + "\n  expect: " + tc.expect + "\n",
			})
			results := runDir(t, dir)
			if len(results) != 1 {
				t.Fatalf("%d results: %+v", len(results), results)
			}
			r := results[0]
			if r.Passed != (len(tc.want) == 0) || len(r.Failures) != len(tc.want) {
				t.Fatalf("got %s: failures %q, want %q", r.Got, r.Failures, tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(r.Failures[i], w) {
					t.Errorf("failure %q, want it to start %q", r.Failures[i], w)
				}
			}
		})
	}
}

// An error of admission as a whole (here, engines not ready, which no
// test file can make) fails its case unless errorContains expects it,
// and then only if it contains what is expected.
func TestAdmissionErrorFails(t *testing.T) {
	suites, err := Load(write(t, map[string]string{
		"policy.yaml": labelPolicy,
		"test.yaml": `apiVersion: cli.portcullis.io/v1alpha1
kind: Test
metadata: {name: t}
cases:
- name: c
  admission: {object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}}
  expect: {allowed: true}
`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := suites[0].Test.Cases[0]
	for _, tc := range []struct {
		name, errorContains string
		validating          bool
		want                []string
	}{
		{"mutating", "", false, []string{"error: mutating: admission policies are still loading"}},
		{"validating", "", true, []string{"error: validating: admission policies are still loading"}},
		{"expected", "still loading", false, nil},
		{"expected, broken", "another error", false, []string{`errors: ["mutating: admission policies are still loading"], want one containing "another error"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := build(t.Context(), suites[0].Objects)
			if err != nil {
				t.Fatal(err)
			}
			if tc.validating {
				e.validate = admission.NewValidationEngine(e) // never marked ready
			} else {
				e.mutate = admission.NewMutationEngine(e)
			}
			c := c
			c.Expect.ErrorContains = tc.errorContains
			r := e.run(t.Context(), c)
			if !slices.Equal(r.Failures, tc.want) {
				t.Errorf("got %s: failures %q, want %q", r.Got, r.Failures, tc.want)
			}
		})
	}
}

// A mutation that is not idempotent fails its case even when the
// expectation says nothing about the object.
func TestNotIdempotentMutationFails(t *testing.T) {
	dir := write(t, map[string]string{
		"policy.yaml": `apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: append}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]
  mutations:
  - jsonPatch:
      expression: '[JSONPatch{op: "add", path: "/metadata/finalizers/-", value: "x"}]'
`,
		"test.yaml": `apiVersion: cli.portcullis.io/v1alpha1
kind: Test
metadata: {name: idempotence}
cases:
- name: append
  admission:
    object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: default, finalizers: []}}
  expect: {allowed: true}
`,
	})
	// Under Ignore it would be skipped whole, as the webhook skips it,
	// with a warning: the case's decision, admitted, would be right.
	results := runDir(t, dir)
	if len(results) != 1 || results[0].Passed || !strings.Contains(results[0].Got, "passes over the policies") {
		t.Fatalf("a non-idempotent mutation passed: %+v", results)
	}
}

// What cannot be loaded is an error naming the file and the problem, not
// a skipped policy or case.
func TestLoadErrors(t *testing.T) {
	test := `apiVersion: cli.portcullis.io/v1alpha1
kind: Test
metadata: {name: t}
cases:
- name: c
  authorization: {request: a/get/pods}
  expect: {decision: NoOpinion}
`
	for _, tc := range []struct {
		name, policy, want string
	}{
		{"unknown field", strings.Replace(labelPolicy, "  mutations:", "  mutation:", 1), `unknown field "spec.mutation"`},
		{"unknown kind of ours", strings.Replace(labelPolicy, "kind: MutationPolicy", "kind: MutatingPolicy", 1), `kind "MutatingPolicy" is not a kind portcullis test reads`},
		{"does not compile", `apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: bad}
spec:
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [pods], operations: [CREATE]}]
  validations: [{expression: "object.spec.containers.all(c, c.nmae == 1", message: m}]
`, "ValidationPolicy bad does not compile: spec.validations[0].expression"},
		{"duplicate", labelPolicy + "---\n" + labelPolicy, "MutationPolicy/stamp is also defined"},
		{"missing secret", strings.SplitN(tokenObjects, "---\n", 2)[1], "StaticToken alice: spec.secretRef: Secret alice-token is not among the objects loaded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, map[string]string{"policy.yaml": tc.policy, "test.yaml": test})
			suites, err := Load(dir)
			if err == nil {
				_, err = Run(context.Background(), suites)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, test, want string }{
		{"no phase", strings.Replace(test, "  authorization: {request: a/get/pods}\n", "", 1), "set exactly one of"},
		{"bad shorthand", strings.Replace(test, "a/get/pods", "a-get-pods", 1), "is not USER/VERB/RESOURCE"},
		{"unknown expectation", strings.Replace(test, "decision: NoOpinion", "decison: NoOpinion", 1), `unknown field "cases[0].expect.decison"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := write(t, map[string]string{"test.yaml": tc.test})
			suites, err := Load(dir)
			if err == nil {
				var results []Result
				if results, err = Run(context.Background(), suites); err == nil && Failed(results) > 0 {
					err = &failure{results[0].Failures}
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

type failure struct{ f []string }

func (f *failure) Error() string { return strings.Join(f.f, "; ") }

// What the reviewer found, each a case that passed whatever the answer or
// showed what it must not: empty lists compare as empty, a static token
// is for the API server's audiences only, Secret data is redacted, an
// operation or expectation that means nothing is refused, and a policy
// error is what errorContains sees.
func TestRunnerEdges(t *testing.T) {
	dir := write(t, map[string]string{
		"policy.yaml": labelPolicy + `---
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: breaks}
spec:
  failurePolicy: Ignore
  match:
    resources: [{apiGroups: [""], apiVersions: [v1], resources: [secrets], operations: [CREATE]}]
  validations: [{expression: "object.data.missing == 'x'", message: m}]
`,
		"tokens.yaml": tokenObjects,
		"test.yaml": `apiVersion: cli.portcullis.io/v1alpha1
kind: Test
metadata: {name: edges}
cases:
- name: no warnings is an empty list
  admission:
    object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}
  expect: {allowed: true, warnings: []}
- name: a static token is not for another audience
  authentication: {tokenFrom: {name: alice-token, key: token}, audiences: [vault]}
  expect: {authenticated: false}
- name: it is for the API server's
  authentication: {tokenFrom: {name: alice-token, key: token}, audiences: ["https://kubernetes.default.svc.cluster.local"]}
  expect: {authenticated: true, user: {username: alice, groups: [ops]}}
- name: a policy error under Ignore admits, and errorContains sees it
  admission:
    object: {apiVersion: v1, kind: Secret, metadata: {name: s}, data: {key: ` + "c2VjcmV0LXZhbHVl" + `}}
  expect: {allowed: true, errorContains: "ValidationPolicy breaks"}
`,
	})
	results := runDir(t, dir)
	for _, r := range results {
		if !r.Passed {
			t.Errorf("%s: got %s: %v", r.Case, r.Got, r.Failures)
		}
		if strings.Contains(string(r.Object), "c2VjcmV0LXZhbHVl") {
			t.Errorf("%s: the report shows the Secret's data: %s", r.Case, r.Object)
		}
	}
	for _, tc := range []struct{ name, c, want string }{
		{"unknown operation", "admission: {operation: CREAT, object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}}\n  expect: {allowed: true}", `operation "CREAT"`},
		{"update without oldObject", "admission: {operation: UPDATE, object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}}\n  expect: {allowed: true}", "an UPDATE has an object and an oldObject"},
		{"nothing expected", "admission: {object: {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}}\n  expect: {}", "every case checks something"},
		{"another phase's expectation", "authorization: {request: a/get/pods}\n  expect: {allowed: true}", "allowed is not an expectation of authorization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := write(t, map[string]string{"test.yaml": "apiVersion: cli.portcullis.io/v1alpha1\nkind: Test\nmetadata: {name: t}\ncases:\n- name: c\n  " + tc.c + "\n"})
			suites, err := Load(d)
			if err == nil {
				var rs []Result
				if rs, err = Run(context.Background(), suites); err == nil && Failed(rs) > 0 {
					err = &failure{rs[0].Failures}
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	d := write(t, map[string]string{"t.yaml": "apiVersion: cli.portcullis.io/v1\nkind: Test\nmetadata: {name: t}\n"})
	if _, err := Load(d); err == nil || !strings.Contains(err.Error(), "a test is apiVersion cli.portcullis.io/v1alpha1") {
		t.Errorf("a test of another version: %v", err)
	}
}

// The JUnit report has what the Ant/Jenkins JUnit schema requires of each
// element: testsuites, testsuite (name, tests, failures, errors),
// testcase (name, classname) and failure (message, type), as CI systems
// read it.
func TestJUnitReportHasTheSchemaAttributes(t *testing.T) {
	results := []Result{
		{Suite: "s", Case: "ok", Phase: PhaseAdmission, Passed: true, Got: "admitted"},
		{Suite: "s", Case: "bad <&>", Phase: PhaseAuthorization, Failures: []string{"decision: got NoOpinion, want Allow"}, Got: "NoOpinion"},
	}
	var b bytes.Buffer
	if err := Write(&b, FormatJUnit, results); err != nil {
		t.Fatal(err)
	}
	required := map[string][]string{
		"testsuites": {"tests", "failures"}, "testsuite": {"name", "tests", "failures", "errors"},
		"testcase": {"name", "classname"}, "failure": {"message", "type"},
	}
	d := xml.NewDecoder(&b)
	seen := map[string]int{}
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		seen[el.Name.Local]++
		for _, attr := range required[el.Name.Local] {
			found := false
			for _, a := range el.Attr {
				found = found || (a.Name.Local == attr && a.Value != "")
			}
			if !found {
				t.Errorf("<%s> has no %s", el.Name.Local, attr)
			}
		}
	}
	if seen["testsuites"] != 1 || seen["testsuite"] != 1 || seen["testcase"] != 2 || seen["failure"] != 1 {
		t.Errorf("elements %v", seen)
	}
}

// A report never shows what a policy said of a Secret, since a message
// expression may quote its data: neither in what was got nor in why a
// case failed. The expectations are checked against it all the same.
func TestReportsDoNotQuoteASecretsMessages(t *testing.T) {
	const data = "c2VjcmV0LXZhbHVl"
	dir := write(t, map[string]string{
		"policy.yaml": `apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: long-values}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [secrets], operations: [CREATE]}]}
  action: Deny
  validations:
  - expression: "object.data.all(k, size(object.data[k]) > 40)"
    messageExpression: "'too short: ' + string(object.data.key)"
`,
		"test.yaml": `apiVersion: cli.portcullis.io/v1alpha1
kind: Test
metadata: {name: secrets}
cases:
- name: denied, as expected
  admission:
    object: {apiVersion: v1, kind: Secret, metadata: {name: s}, data: {key: ` + data + `}}
  expect: {allowed: false, messageContains: "too short: ` + data + `"}
- name: denied, not as expected
  admission:
    object: {apiVersion: v1, kind: Secret, metadata: {name: s}, data: {key: ` + data + `}}
  expect: {allowed: true, messageContains: "long enough", warnings: ["w"]}
`,
	})
	results := runDir(t, dir)
	if len(results) != 2 || !results[0].Passed || results[1].Passed || len(results[1].Failures) != 3 {
		t.Fatalf("results %+v: want the first passed and the second failed thrice", results)
	}
	for _, r := range results {
		if report := r.Got + strings.Join(r.Failures, "\n"); strings.Contains(report, data) || !strings.Contains(r.Got, "denied") {
			t.Errorf("%s: the report quotes the Secret's message: %s", r.Case, report)
		}
	}
}
