package policytest

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
