package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
)

// The MutatingAdmissionPolicy and ValidatingAdmissionPolicy examples of
// the Kubernetes documentation (v1.36+: validating-admission-policy.md,
// mutating-admission-policy.md, the admission policy tutorials and the
// manifest-based admission control page), each written once as the
// built-in and once as a Portcullis policy, through the same API server:
// the same object gets the same stored result, the same rejection message
// or the same audit annotation from both.
//
// Both sides live side by side: a built-in's binding and a Portcullis
// policy select objects by the label e2e-side (builtin or ours), which the
// test sets on each copy of the object and strips before comparing. A
// third copy, in the example but on neither side, must be admitted
// unchanged: a side that acts beyond its selector shows there. Every
// request is a server-side dry run, so the API server runs the whole
// admission chain and returns the object it would store.
//
// The sidecar examples' paramKind, which their expressions never read and
// whose CRD the docs do not give, is left out of both copies; the
// validations' reason (the HTTP reason of a rejection), which Portcullis
// policies do not have, of ours.

const docsNS = "e2e-docs"

type docCase struct {
	name string
	// object is a manifest, without namespace for namespaced kinds (the
	// test puts it in docsNS) and without the e2e-side label.
	object string
	// deny, when set, is the documented message both must reject with;
	// otherwise both admit and store the same object.
	deny string
	// audit, when set, is an audit annotation value both must record:
	// the built-in as POLICY/KEY, ours as validate.portcullis.io/POLICY.KEY.
	audit string
	// changed says that the policies change this object (a mutation
	// example) rather than leave it as sent.
	changed bool
	// setup is applied before the case, and remove deleted: a parameter
	// object changed or removed, say.
	setup, remove string
	// stored, when set, is in the JSON of the object both store.
	stored string
}

type docExample struct {
	name     string // where in the docs
	builtin  string // the policy and its binding, selecting e2e-side: builtin
	ours     string // the same as Portcullis policies, selecting e2e-side: ours
	auditKey string // POLICY/KEY of the audit annotation, for cases with audit
	// setup is what the example needs before its policies: a parameter
	// CRD and parameter objects.
	setup string
	cases []docCase
	index int // set by the test
}

// builtinSelector and oursSelector select one side of one example: the
// test replaces EXAMPLE with the example's index, so that the examples,
// all loaded at once, do not act on each other's objects.
const builtinSelector = `
    objectSelector: {matchLabels: {e2e-side: builtin, e2e-example: "EXAMPLE"}}`

const oursSelector = `
    objectSelector: {matchLabels: {e2e-side: ours, e2e-example: "EXAMPLE"}}`

func deployment(name string, replicas int, image string, labels string) string {
	if labels == "" {
		labels = "{app: " + name + "}"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, labels: %[4]s}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec: {containers: [{name: c, image: %[3]q}]}
`, name, replicas, image, labels)
}

func pod(name, spec string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
%s`, name, spec)
}

var docExamples = []docExample{{
	name: "validating-admission-policy.md: basic example (demo-policy.example.com)",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: "demo-policy.example.com"}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]
  validations:
    - expression: "object.spec.replicas <= 5"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: "demo-binding-test.example.com"}
spec:
  policyName: "demo-policy.example.com"
  validationActions: [Deny]
  matchResources:
    namespaceSelector: {matchLabels: {environment: test}}` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: "demo-policy.example.com"}
spec:
  failurePolicy: Fail
  match:
    resources:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]
    namespaceSelector: {matchLabels: {environment: test}}` + oursSelector + `
  validations:
    - expression: "object.spec.replicas <= 5"`,
	cases: []docCase{
		{name: "six replicas", object: deployment("six", 6, "nginx", ""), deny: "failed expression: object.spec.replicas <= 5"},
		{name: "five replicas", object: deployment("five", 5, "nginx", "")},
	},
}, {
	name: "validating-admission-policy.md: matchConditions",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: "demo-conditions.example.com"}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - apiGroups:   ["*"]
        apiVersions: ["*"]
        operations:  ["CREATE", "UPDATE"]
        resources:   ["*"]
  matchConditions:
    - name: 'exclude-leases'
      expression: '!(request.resource.group == "coordination.k8s.io" && request.resource.resource == "leases")'
    - name: 'exclude-kubelet-requests'
      expression: '!("system:nodes" in request.userInfo.groups)'
    - name: 'rbac'
      expression: 'request.resource.group != "rbac.authorization.k8s.io"'
  validations:
    - expression: "!object.metadata.name.contains('demo') || object.metadata.namespace == 'demo'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: "demo-conditions.example.com"}
spec:
  policyName: "demo-conditions.example.com"
  validationActions: [Deny]
  matchResources:` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: "demo-conditions.example.com"}
spec:
  failurePolicy: Fail
  match:
    resources:
      - apiGroups:   ["*"]
        apiVersions: ["*"]
        operations:  ["CREATE", "UPDATE"]
        resources:   ["*"]` + oursSelector + `
    conditions:
    - name: 'exclude-leases'
      expression: '!(request.resource.group == "coordination.k8s.io" && request.resource.resource == "leases")'
    - name: 'exclude-kubelet-requests'
      expression: '!("system:nodes" in request.userInfo.groups)'
    - name: 'rbac'
      expression: 'request.resource.group != "rbac.authorization.k8s.io"'
  validations:
    - expression: "!object.metadata.name.contains('demo') || object.metadata.namespace == 'demo'"`,
	cases: []docCase{
		{name: "a demo ConfigMap outside demo", object: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: demo-cm}\ndata: {a: b}\n",
			deny: "failed expression: !object.metadata.name.contains('demo') || object.metadata.namespace == 'demo'"},
		{name: "another ConfigMap", object: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {a: b}\n"},
		{name: "a demo lease", object: "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: demo-lease}\nspec: {holderIdentity: x}\n"},
		{name: "a demo Role (RBAC is skipped)", object: "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: demo-role}\nrules: []\n"},
	},
}, {
	name:     "validating-admission-policy.md: auditAnnotations and messageExpression",
	auditKey: "demo-audit.example.com/high-replica-count",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: "demo-audit.example.com"}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]
  validations:
    - expression: "object.spec.replicas > 50"
      messageExpression: "'Deployment spec.replicas set to ' + string(object.spec.replicas)"
  auditAnnotations:
    - key: "high-replica-count"
      valueExpression: "'Deployment spec.replicas set to ' + string(object.spec.replicas)"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: "demo-audit.example.com"}
spec:
  policyName: "demo-audit.example.com"
  validationActions: [Deny]
  matchResources:` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: "demo-audit.example.com"}
spec:
  failurePolicy: Fail
  match:
    resources:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]` + oursSelector + `
  validations:
    - expression: "object.spec.replicas > 50"
      messageExpression: "'Deployment spec.replicas set to ' + string(object.spec.replicas)"
  auditAnnotations:
    - key: "high-replica-count"
      valueExpression: "'Deployment spec.replicas set to ' + string(object.spec.replicas)"`,
	cases: []docCase{
		{name: "three replicas", object: deployment("three", 3, "nginx", ""), deny: "Deployment spec.replicas set to 3"},
		{name: "128 replicas", object: deployment("many", 128, "nginx", ""), audit: "Deployment spec.replicas set to 128"},
	},
}, {
	name: "validating-admission-policy.md: variable composition (image-matches-namespace-environment)",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: "image-matches-namespace-environment.policy.example.com"}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]
  variables:
  - name: environment
    expression: "'environment' in namespaceObject.metadata.labels ? namespaceObject.metadata.labels['environment'] : 'prod'"
  - name: exempt
    expression: "'exempt' in object.metadata.labels && object.metadata.labels['exempt'] == 'true'"
  - name: containers
    expression: "object.spec.template.spec.containers"
  - name: containersToCheck
    expression: "variables.containers.filter(c, c.image.contains('example.com/'))"
  validations:
  - expression: "variables.exempt || variables.containersToCheck.all(c, c.image.startsWith(variables.environment + '.'))"
    messageExpression: "'only ' + variables.environment + ' images are allowed in namespace ' + namespaceObject.metadata.name"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: "image-matches-namespace-environment.policy.example.com"}
spec:
  policyName: "image-matches-namespace-environment.policy.example.com"
  validationActions: [Deny]
  matchResources:` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: "image-matches-namespace-environment.policy.example.com"}
spec:
  failurePolicy: Fail
  match:
    resources:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]` + oursSelector + `
  variables:
  - name: environment
    expression: "'environment' in namespaceObject.metadata.labels ? namespaceObject.metadata.labels['environment'] : 'prod'"
  - name: exempt
    expression: "'exempt' in object.metadata.labels && object.metadata.labels['exempt'] == 'true'"
  - name: containers
    expression: "object.spec.template.spec.containers"
  - name: containersToCheck
    expression: "variables.containers.filter(c, c.image.contains('example.com/'))"
  validations:
  - expression: "variables.exempt || variables.containersToCheck.all(c, c.image.startsWith(variables.environment + '.'))"
    messageExpression: "'only ' + variables.environment + ' images are allowed in namespace ' + namespaceObject.metadata.name"`,
	cases: []docCase{
		{name: "a dev image", object: deployment("invalid", 1, "dev.example.com/nginx", ""), deny: "only test images are allowed in namespace " + docsNS},
		{name: "a test image", object: deployment("valid", 1, "test.example.com/nginx", "")},
		{name: "not an example.com image", object: deployment("other", 1, "nginx", "")},
		{name: "exempt", object: deployment("exempt", 1, "dev.example.com/nginx", "{app: exempt, exempt: 'true'}")},
	},
}, {
	name: "admission-policies.md tutorial: enforce-multiple-replicas-deployments",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: "enforce-multiple-replicas-deployments"}
spec:
  matchConstraints:
    resourceRules:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      resources:   ["deployments"]
      operations:  ["CREATE", "UPDATE"]
  validations:
    - expression: "object.spec.replicas >= 2"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: enforce-multiple-replicas-deployments-binding}
spec:
  policyName: "enforce-multiple-replicas-deployments"
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: ` + docsNS + `}` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: "enforce-multiple-replicas-deployments"}
spec:
  match:
    resources:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      resources:   ["deployments"]
      operations:  ["CREATE", "UPDATE"]
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: ` + docsNS + `}` + oursSelector + `
  validations:
    - expression: "object.spec.replicas >= 2"`,
	cases: []docCase{
		{name: "one replica", object: deployment("one", 1, "nginx", ""), deny: "failed expression: object.spec.replicas >= 2"},
		{name: "two replicas", object: deployment("two", 2, "nginx", "")},
	},
}, {
	name: "manifest-admission-control.md: deny privileged containers (renamed from .static.k8s.io)",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: "example-deny-privileged"}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["pods"]
  variables:
  - name: allContainers
    expression: >-
      object.spec.containers +
      (has(object.spec.initContainers) ? object.spec.initContainers : []) +
      (has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers : [])
  validations:
  - expression: >-
      !variables.allContainers.exists(c,
      has(c.securityContext) && has(c.securityContext.privileged) &&
      c.securityContext.privileged == true)
    message: "Privileged containers are not allowed"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: "example-deny-privileged-binding"}
spec:
  policyName: "example-deny-privileged"
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchExpressions:
      - key: "kubernetes.io/metadata.name"
        operator: NotIn
        values: ["kube-system"]` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: "example-deny-privileged"}
spec:
  failurePolicy: Fail
  match:
    resources:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE", "UPDATE"]
      resources: ["pods"]
    namespaceSelector:
      matchExpressions:
      - key: "kubernetes.io/metadata.name"
        operator: NotIn
        values: ["kube-system"]` + oursSelector + `
  variables:
  - name: allContainers
    expression: >-
      object.spec.containers +
      (has(object.spec.initContainers) ? object.spec.initContainers : []) +
      (has(object.spec.ephemeralContainers) ? object.spec.ephemeralContainers : [])
  validations:
  - expression: >-
      !variables.allContainers.exists(c,
      has(c.securityContext) && has(c.securityContext.privileged) &&
      c.securityContext.privileged == true)
    message: "Privileged containers are not allowed"`,
	cases: []docCase{
		{name: "a privileged init container", object: pod("privileged", "  initContainers: [{name: i, image: busybox, securityContext: {privileged: true}}]\n  containers: [{name: c, image: nginx}]\n"),
			deny: "Privileged containers are not allowed"},
		{name: "no securityContext", object: pod("plain", "  containers: [{name: c, image: nginx}]\n")},
	},
}, {
	name: "mutating-admission-policy.md: applyConfiguration sidecar, as written (args is an atomic list)",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: "sidecar-args.example.com"}
spec:
  matchConstraints:
    resourceRules:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["pods"]
  matchConditions:
    - name: does-not-already-have-sidecar
      expression: "!object.spec.initContainers.exists(ic, ic.name == \"mesh-proxy\")"
  failurePolicy: Fail
  reinvocationPolicy: IfNeeded
  mutations:
    - patchType: "ApplyConfiguration"
      applyConfiguration:
        expression: >
          Object{
            spec: Object.spec{
              initContainers: [
                Object.spec.initContainers{
                  name: "mesh-proxy",
                  image: "mesh/proxy:v1.0.0",
                  args: ["proxy", "sidecar"],
                  restartPolicy: "Always"
                }
              ]
            }
          }
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: "sidecar-args.example.com"}
spec:
  policyName: "sidecar-args.example.com"
  matchResources:` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: "sidecar-args.example.com"}
spec:
  match:
    resources:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["pods"]` + oursSelector + `
    conditions:
    - name: does-not-already-have-sidecar
      expression: "!object.spec.initContainers.exists(ic, ic.name == \"mesh-proxy\")"
  failurePolicy: Fail
  mutations:
    - applyConfiguration:
        expression: >
          Object{
            spec: Object.spec{
              initContainers: [
                Object.spec.initContainers{
                  name: "mesh-proxy",
                  image: "mesh/proxy:v1.0.0",
                  args: ["proxy", "sidecar"],
                  restartPolicy: "Always"
                }
              ]
            }
          }`,
	cases: []docCase{
		{name: "a pod with an init container", object: pod("myapp-args", "  initContainers: [{name: myapp-initializer, image: example/initializer:v1.0.0}]\n  containers: [{name: myapp, image: example/myapp:v1}]\n"),
			deny: "may not mutate atomic arrays, maps or structs: .spec.initContainers[0].args"},
	},
}, {
	name: "mutating-admission-policy.md: applyConfiguration sidecar, without args",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: "sidecar-policy.example.com"}
spec:
  matchConstraints:
    resourceRules:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["pods"]
  matchConditions:
    - name: does-not-already-have-sidecar
      expression: "!object.spec.initContainers.exists(ic, ic.name == \"mesh-proxy\")"
  failurePolicy: Fail
  reinvocationPolicy: IfNeeded
  mutations:
    - patchType: "ApplyConfiguration"
      applyConfiguration:
        expression: >
          Object{spec: Object.spec{initContainers: [Object.spec.initContainers{
            name: "mesh-proxy", image: "mesh/proxy:v1.0.0", restartPolicy: "Always"}]}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: "sidecar-policy.example.com"}
spec:
  policyName: "sidecar-policy.example.com"
  matchResources:` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: "sidecar-policy.example.com"}
spec:
  match:
    resources:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["pods"]` + oursSelector + `
    conditions:
    - name: does-not-already-have-sidecar
      expression: "!object.spec.initContainers.exists(ic, ic.name == \"mesh-proxy\")"
  failurePolicy: Fail
  mutations:
    - applyConfiguration:
        expression: >
          Object{spec: Object.spec{initContainers: [Object.spec.initContainers{
            name: "mesh-proxy", image: "mesh/proxy:v1.0.0", restartPolicy: "Always"}]}}`,
	cases: []docCase{
		{name: "a pod with an init container", object: pod("myapp", "  initContainers: [{name: myapp-initializer, image: example/initializer:v1.0.0}]\n  containers: [{name: myapp, image: example/myapp:v1}]\n"), changed: true},
		{name: "a pod that has the sidecar", object: pod("meshed", "  initContainers: [{name: mesh-proxy, image: mine, restartPolicy: Always}]\n  containers: [{name: myapp, image: example/myapp:v1}]\n")},
	},
}, {
	name: "mutating-admission-policy.md: JSONPatch sidecar",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: "sidecar-jsonpatch.example.com"}
spec:
  matchConstraints:
    resourceRules:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["pods"]
  matchConditions:
    - name: does-not-already-have-sidecar
      expression: "!object.spec.initContainers.exists(ic, ic.name == \"mesh-proxy\")"
  failurePolicy: Fail
  reinvocationPolicy: IfNeeded
  mutations:
    - patchType: "JSONPatch"
      jsonPatch:
        expression: >
          [
            JSONPatch{
              op: "add", path: "/spec/initContainers/-",
              value: Object.spec.initContainers{
                name: "mesh-proxy",
                image: "mesh-proxy/v1.0.0",
                restartPolicy: "Always"
              }
            }
          ]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: "sidecar-jsonpatch.example.com"}
spec:
  policyName: "sidecar-jsonpatch.example.com"
  matchResources:` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: "sidecar-jsonpatch.example.com"}
spec:
  match:
    resources:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["pods"]` + oursSelector + `
    conditions:
    - name: does-not-already-have-sidecar
      expression: "!object.spec.initContainers.exists(ic, ic.name == \"mesh-proxy\")"
  failurePolicy: Fail
  mutations:
    - jsonPatch:
        expression: >
          [
            JSONPatch{
              op: "add", path: "/spec/initContainers/-",
              value: Object.spec.initContainers{
                name: "mesh-proxy",
                image: "mesh-proxy/v1.0.0",
                restartPolicy: "Always"
              }
            }
          ]`,
	cases: []docCase{
		{name: "a pod with an init container", object: pod("myapp-jp", "  initContainers: [{name: myapp-initializer, image: example/initializer:v1.0.0}]\n  containers: [{name: myapp, image: example/myapp:v1}]\n"), changed: true},
	},
}, {
	name: "mutating-admission-policy.md: JSONPatch snippets (escapeKey, test and replace)",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: "jsonpatch-snippets.example.com"}
spec:
  matchConstraints:
    resourceRules:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["configmaps"]
  failurePolicy: Fail
  reinvocationPolicy: Never
  mutations:
    - patchType: "JSONPatch"
      jsonPatch:
        expression: >
          [
            JSONPatch{
              op: "add",
              path: "/metadata/labels/" + jsonpatch.escapeKey("example.com/environment"),
              value: "test"
            },
          ]
    - patchType: "JSONPatch"
      jsonPatch:
        expression: >
          [
            JSONPatch{op: "test", path: "/data/example", value: "Red"},
            JSONPatch{op: "replace", path: "/data/example", value: "Green"}
          ]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: "jsonpatch-snippets.example.com"}
spec:
  policyName: "jsonpatch-snippets.example.com"
  matchResources:` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: "jsonpatch-snippets.example.com"}
spec:
  match:
    resources:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["configmaps"]` + oursSelector + `
  failurePolicy: Fail
  mutations:
    - jsonPatch:
        expression: >
          [
            JSONPatch{
              op: "add",
              path: "/metadata/labels/" + jsonpatch.escapeKey("example.com/environment"),
              value: "test"
            },
          ]
    - jsonPatch:
        expression: >
          [
            JSONPatch{op: "test", path: "/data/example", value: "Red"},
            JSONPatch{op: "replace", path: "/data/example", value: "Green"}
          ]`,
	cases: []docCase{
		{name: "red", object: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: red}\ndata: {example: Red}\n", changed: true},
		{name: "blue", object: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: blue}\ndata: {example: Blue}\n", changed: true},
	},
}, {
	name: "admission-policies.md tutorial: default-pod-security-baseline",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: "default-pod-security-baseline"}
spec:
  reinvocationPolicy: IfNeeded
  matchConstraints:
    resourceRules:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["namespaces"]
  matchConditions:
    - name: "exclude-system-namespaces"
      expression: "!object.metadata.name.startsWith('kube-')"
    - name: "no-existing-pod-security-label"
      expression: "!('pod-security.kubernetes.io/enforce' in object.metadata.labels)"
  mutations:
    - patchType: "ApplyConfiguration"
      applyConfiguration:
        expression: "Object{metadata: Object.metadata{labels: {'pod-security.kubernetes.io/enforce': 'baseline'}}}"
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: default-pod-security-baseline}
spec:
  policyName: default-pod-security-baseline
  matchResources:` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: "default-pod-security-baseline"}
spec:
  match:
    resources:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["namespaces"]` + oursSelector + `
    conditions:
    - name: "exclude-system-namespaces"
      expression: "!object.metadata.name.startsWith('kube-')"
    - name: "no-existing-pod-security-label"
      expression: "!('pod-security.kubernetes.io/enforce' in object.metadata.labels)"
  mutations:
    - applyConfiguration:
        expression: "Object{metadata: Object.metadata{labels: {'pod-security.kubernetes.io/enforce': 'baseline'}}}"`,
	cases: []docCase{
		{name: "a new namespace", object: "apiVersion: v1\nkind: Namespace\nmetadata: {name: example}\n", changed: true},
		{name: "a privileged namespace", object: "apiVersion: v1\nkind: Namespace\nmetadata: {name: another-example, labels: {pod-security.kubernetes.io/enforce: privileged}}\n"},
		{name: "a system namespace", object: "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-example}\n"},
	},
}, {
	name: "admission-policy tutorial: set-default-owner",
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: "set-default-owner"}
spec:
  reinvocationPolicy: Never
  matchConstraints:
    resourceRules:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["pods"]
  mutations:
    - patchType: "ApplyConfiguration"
      applyConfiguration:
        expression: "Object{metadata: Object.metadata{labels: {'owner': 'champbreed'}}}"
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: "set-default-owner-binding"}
spec:
  policyName: "set-default-owner"
  matchResources:` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: "set-default-owner"}
spec:
  match:
    resources:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["pods"]` + oursSelector + `
  mutations:
    - applyConfiguration:
        expression: "Object{metadata: Object.metadata{labels: {'owner': 'champbreed'}}}"`,
	cases: []docCase{
		{name: "a pod", object: pod("owned", "  containers: [{name: c, image: nginx}]\n"), changed: true},
		{name: "a pod with another owner", object: "apiVersion: v1\nkind: Pod\nmetadata: {name: reowned, labels: {owner: someone}}\nspec:\n  containers: [{name: c, image: nginx}]\n", changed: true},
	},
}, {
	name: "validating-admission-policy.md: parameter resources (ReplicaLimit)",
	setup: `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: replicalimits.rules.example.com}
spec:
  group: rules.example.com
  scope: Namespaced
  names: {plural: replicalimits, singular: replicalimit, kind: ReplicaLimit, listKind: ReplicaLimitList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          maxReplicas: {type: integer}
---
apiVersion: rules.example.com/v1
kind: ReplicaLimit
metadata: {name: "replica-limit-test.example.com", namespace: "default"}
maxReplicas: 3`,
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: "replicalimit-policy.example.com"}
spec:
  failurePolicy: Fail
  paramKind:
    apiVersion: rules.example.com/v1
    kind: ReplicaLimit
  matchConstraints:
    resourceRules:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]
  validations:
    - expression: "object.spec.replicas <= params.maxReplicas"
      reason: Invalid
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: "replicalimit-binding-test.example.com"}
spec:
  policyName: "replicalimit-policy.example.com"
  validationActions: [Deny]
  paramRef:
    name: "replica-limit-test.example.com"
    namespace: "default"
    parameterNotFoundAction: Deny
  matchResources:
    namespaceSelector: {matchLabels: {environment: test}}` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: "replicalimit-policy.example.com"}
spec:
  failurePolicy: Fail
  paramKind:
    apiVersion: rules.example.com/v1
    kind: ReplicaLimit
  paramRef:
    name: "replica-limit-test.example.com"
    namespace: "default"
    parameterNotFoundAction: Deny
  match:
    resources:
    - apiGroups:   ["apps"]
      apiVersions: ["v1"]
      operations:  ["CREATE", "UPDATE"]
      resources:   ["deployments"]
    namespaceSelector: {matchLabels: {environment: test}}` + oursSelector + `
  validations:
    - expression: "object.spec.replicas <= params.maxReplicas"`,
	cases: []docCase{
		{name: "four replicas", object: deployment("four", 4, "nginx", ""), deny: "failed expression: object.spec.replicas <= params.maxReplicas"},
		{name: "three replicas", object: deployment("three", 3, "nginx", "")},
		{name: "the limit raised, the policy untouched", object: deployment("four", 4, "nginx", ""),
			setup: "apiVersion: rules.example.com/v1\nkind: ReplicaLimit\nmetadata: {name: replica-limit-test.example.com, namespace: default}\nmaxReplicas: 4\n"},
		{name: "the limit gone, parameterNotFoundAction Deny", object: deployment("gone", 1, "nginx", ""),
			remove: "apiVersion: rules.example.com/v1\nkind: ReplicaLimit\nmetadata: {name: replica-limit-test.example.com, namespace: default}\n",
			deny:   "no params found for policy binding with `Deny` parameterNotFoundAction"},
	},
}, {
	name: "admission-policies.md tutorial: default-pod-security-configurable (a ConfigMap parameter)",
	setup: `
apiVersion: v1
kind: ConfigMap
metadata: {namespace: kube-system, name: default-pod-security-standard}
data: {default: restricted}`,
	builtin: `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: "default-pod-security-configurable"}
spec:
  reinvocationPolicy: IfNeeded
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["namespaces"]
  matchConditions:
    - name: "exclude-system-namespaces"
      expression: "!object.metadata.name.startsWith('kube-')"
    - name: "no-existing-pod-security-label"
      expression: "!('pod-security.kubernetes.io/enforce' in object.metadata.labels)"
  mutations:
    - patchType: "ApplyConfiguration"
      applyConfiguration:
        expression: "Object{metadata: Object.metadata{labels: {'pod-security.kubernetes.io/enforce': params.data.default}}}"
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: default-pod-security-configurable}
spec:
  policyName: default-pod-security-configurable
  paramRef:
    parameterNotFoundAction: Allow
    namespace: kube-system
    name: default-pod-security-standard
  matchResources:` + builtinSelector,
	ours: `
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: "default-pod-security-configurable"}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  paramRef:
    parameterNotFoundAction: Allow
    namespace: kube-system
    name: default-pod-security-standard
  match:
    resources:
    - apiGroups:   [""]
      apiVersions: ["v1"]
      operations:  ["CREATE"]
      resources:   ["namespaces"]` + oursSelector + `
    conditions:
    - name: "exclude-system-namespaces"
      expression: "!object.metadata.name.startsWith('kube-')"
    - name: "no-existing-pod-security-label"
      expression: "!('pod-security.kubernetes.io/enforce' in object.metadata.labels)"
  mutations:
    - applyConfiguration:
        expression: "Object{metadata: Object.metadata{labels: {'pod-security.kubernetes.io/enforce': params.data.default}}}"`,
	cases: []docCase{
		{name: "restricted by default", object: "apiVersion: v1\nkind: Namespace\nmetadata: {name: yet-another-example}\n", changed: true,
			stored: `"pod-security.kubernetes.io/enforce":"restricted"`},
		{name: "the default changed, the policy untouched", object: "apiVersion: v1\nkind: Namespace\nmetadata: {name: yet-another-example}\n", changed: true,
			setup:  "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: kube-system, name: default-pod-security-standard}\ndata: {default: baseline}\n",
			stored: `"pod-security.kubernetes.io/enforce":"baseline"`},
	},
}}

func TestDocExamplesSideBySide(t *testing.T) {
	ctx := ctxFor(t, 6*time.Minute)
	ensureNamespace(t, ctx, docsNS)
	// The basic example's binding selects environment: test; the
	// variables example then reads "test" as the environment.
	setNamespaceLabel(t, ctx, docsNS, "environment", "test")
	// The examples' names are unique across both kinds (several share
	// one in the docs, renamed here).
	for i := range docExamples {
		ex := &docExamples[i]
		ex.builtin = strings.ReplaceAll(ex.builtin, "EXAMPLE", fmt.Sprint(i))
		ex.ours = strings.ReplaceAll(ex.ours, "EXAMPLE", fmt.Sprint(i))
		ex.index = i
		if ex.setup != "" {
			// A parameter object can be applied once its CRD is served.
			eventually(t, ctx, "the example's setup applies", func(ctx context.Context) (bool, error) {
				return env.Apply(ctx, []byte(ex.setup)) == nil, env.Apply(ctx, []byte(ex.setup))
			})
			t.Cleanup(func() { deleteManifest(t, ex.setup) })
		}
		for _, m := range []string{ex.builtin, ex.ours} {
			apply(t, ctx, m)
			t.Cleanup(func() { deleteManifest(t, m) })
		}
		for _, doc := range strings.Split(ex.ours, "\n---\n") {
			var meta struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatal(err)
			}
			var obj client.Object = &admissionv1alpha1.ValidationPolicy{}
			if meta.Kind == "MutationPolicy" {
				obj = &admissionv1alpha1.MutationPolicy{}
			}
			obj.SetName(meta.Metadata.Name)
			waitAdmissionReady(t, ctx, obj)
		}
	}
	for _, ex := range docExamples {
		t.Run(ex.name, func(t *testing.T) {
			for _, c := range ex.cases {
				t.Run(c.name, func(t *testing.T) {
					if c.setup != "" {
						apply(t, ctx, c.setup)
					}
					if c.remove != "" {
						deleteManifest(t, c.remove)
					}
					sideBySide(t, ctx, ex, c)
				})
			}
		})
	}
	if len(docExamples) < 10 {
		t.Errorf("%d examples, want at least ten", len(docExamples))
	}
}

// sideBySide creates the case's object once per side, as a server-side
// dry run, and compares: until the API server has loaded the built-in
// and the webhook its rules, a side may still answer otherwise, so it
// retries until both give the documented answer.
func sideBySide(t *testing.T, ctx context.Context, ex docExample, c docCase) {
	t.Helper()
	// The error of the last whole attempt: one cut by the deadline says
	// nothing.
	var last error
	eventually(t, ctx, "both sides answer as documented", func(ctx context.Context) (bool, error) {
		ok, err := sameAnswer(t, ctx, ex, c)
		if ctx.Err() == nil {
			last = err
		}
		return ok, last
	})
	if c.audit != "" {
		policy, key, _ := strings.Cut(ex.auditKey, "/")
		eventually(t, ctx, "both audit annotations are recorded", func(ctx context.Context) (bool, error) {
			b, err := auditLogHas(fmt.Sprintf(`%q:%q`, ex.auditKey, c.audit))
			if err != nil || !b {
				return false, err
			}
			return auditLogHas(fmt.Sprintf(`%q:%q`, auditAnnotationKey(t, ctx, policy, key), c.audit))
		})
	}
}

// sameAnswer makes one attempt of sideBySide. Besides a copy of the
// object for each side, it sends a control copy in the example that
// neither side selects (no e2e-side label): a policy of ours that matched
// more than its selector says would also act on the built-in's copy,
// where both sides' answers are the same and the comparison sees
// nothing, but it shows on the control.
func sameAnswer(t *testing.T, ctx context.Context, ex docExample, c docCase) (bool, error) {
	sides := [3]string{"builtin", "ours", "control"}
	var got [3]*unstructured.Unstructured
	var errs [3]error
	for i, side := range sides {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(c.object), &u.Object); err != nil {
			t.Fatal(err)
		}
		if u.GetKind() != "Namespace" {
			u.SetNamespace(docsNS)
		}
		l := u.GetLabels()
		if l == nil {
			l = map[string]string{}
		}
		if side != "control" {
			l["e2e-side"] = side
		}
		l["e2e-example"] = fmt.Sprint(ex.index)
		u.SetLabels(l)
		errs[i] = env.Client.Create(ctx, u, client.DryRunAll)
		got[i] = u
	}
	sent := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(c.object), &sent.Object); err != nil {
		t.Fatal(err)
	}
	if errs[2] != nil {
		return false, fmt.Errorf("the control copy, which neither side selects, was refused: %v", errs[2])
	}
	if stored := essentials(comparable(got[2])); stored != essentials(sent.Object) {
		return false, fmt.Errorf("the control copy, which neither side selects, was changed: %s, sent %s", stored, essentials(sent.Object))
	}
	if c.deny != "" {
		for i, err := range errs[:2] {
			if err == nil || !strings.Contains(err.Error(), c.deny) {
				return false, fmt.Errorf("%s: %v, want a rejection containing %q", sides[i], err, c.deny)
			}
		}
		// Ours as a generated policy or the webhook: either way its
		// name ends in portcullis.io; the built-in's never does.
		if !strings.Contains(errs[1].Error(), "portcullis.io") {
			return false, fmt.Errorf("ours was rejected by something else: %v", errs[1])
		}
		if strings.Contains(errs[0].Error(), "portcullis.io") {
			return false, fmt.Errorf("the built-in's copy was rejected by ours: %v", errs[0])
		}
		return true, nil
	}
	for i, err := range errs[:2] {
		if err != nil {
			return false, fmt.Errorf("%s: %v", sides[i], err)
		}
	}
	b, o := comparable(got[0]), comparable(got[1])
	if !reflect.DeepEqual(b, o) {
		bj, _ := json.Marshal(b)
		oj, _ := json.Marshal(o)
		return false, fmt.Errorf("stored objects differ:\nbuiltin %s\nours    %s", bj, oj)
	}
	// A mutation example that changes nothing on both sides proves
	// nothing: the policies must have applied.
	if changed := essentials(b) != essentials(sent.Object); changed != c.changed {
		return false, fmt.Errorf("changed = %v, want %v: %v", changed, c.changed, b)
	}
	if bj, _ := json.Marshal(b); c.stored != "" && !strings.Contains(string(bj), c.stored) {
		return false, fmt.Errorf("stored %s, want it to hold %s", bj, c.stored)
	}
	return true, nil
}

// comparable is a stored object without what differs between two
// creations of it: its identity, timestamps, managed fields and the side
// label.
func comparable(u *unstructured.Unstructured) map[string]any {
	o := u.DeepCopy().Object
	meta := o["metadata"].(map[string]any)
	for _, k := range []string{"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"} {
		delete(meta, k)
	}
	if l, ok := meta["labels"].(map[string]any); ok {
		delete(l, "e2e-side")
		delete(l, "e2e-example")
		if len(l) == 0 {
			delete(meta, "labels")
		}
	}
	return o
}

// essentials is what the examples' mutations change, without what the
// API server defaults: labels, data, and each container's name and image.
func essentials(o map[string]any) string {
	out := map[string]any{"data": o["data"]}
	if meta, ok := o["metadata"].(map[string]any); ok {
		labels := map[string]any{}
		l, _ := meta["labels"].(map[string]any)
		for k, v := range l {
			labels[k] = v
		}
		// The API server labels every namespace with its name.
		delete(labels, "kubernetes.io/metadata.name")
		if len(labels) > 0 {
			out["labels"] = labels
		}
	}
	if s, ok := o["spec"].(map[string]any); ok {
		for _, k := range []string{"containers", "initContainers"} {
			cs, _ := s[k].([]any)
			if len(cs) == 0 {
				continue
			}
			var names []string
			for _, c := range cs {
				m := c.(map[string]any)
				names = append(names, fmt.Sprint(m["name"], "=", m["image"]))
			}
			out[k] = names
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// deleteManifest deletes each object of a multi-document manifest.
func deleteManifest(t *testing.T, manifest string) {
	t.Helper()
	for _, doc := range strings.Split(manifest, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil || len(u.Object) == 0 {
			continue
		}
		deleteObj(t, u)
	}
}

// setNamespaceLabel labels a namespace.
func setNamespaceLabel(t *testing.T, ctx context.Context, name, key, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, key, value)
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	if err := env.Client.Patch(ctx, ns, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}
