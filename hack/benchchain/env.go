package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	admissionv1alpha1 "github.com/portcullis-io/portcullis/api/admission/v1alpha1"
	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
	"github.com/portcullis-io/portcullis/internal/controlplane"
	"github.com/portcullis-io/portcullis/internal/decision"
	"github.com/portcullis-io/portcullis/internal/devenv"
)

// The workload every configuration serves alike: user bench-user may
// create and get ConfigMaps in namespace bench; a mutation labels each
// new ConfigMap stamped=yes; a validation refuses those named reject-*.
const (
	benchNS   = "bench"
	benchUser = "bench-user"
)

// builtinManifests are the built-ins' form of the workload: RBAC, a
// MutatingAdmissionPolicy and a ValidatingAdmissionPolicy.
const builtinManifests = `
apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: bench-configmaps, namespace: bench}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [create, get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bench-configmaps, namespace: bench}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: bench-configmaps}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: bench-user}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicy
metadata: {name: bench-stamp}
spec:
  matchConstraints: {resourceRules: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]}
  reinvocationPolicy: IfNeeded
  mutations:
  - patchType: JSONPatch
    jsonPatch: {expression: '(has(object.metadata.labels) ? [] : [JSONPatch{op: "add", path: "/metadata/labels", value: {}}]) + [JSONPatch{op: "add", path: "/metadata/labels/stamped", value: "yes"}]'}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingAdmissionPolicyBinding
metadata: {name: bench-stamp}
spec: {policyName: bench-stamp}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: bench-no-reject}
spec:
  matchConstraints: {resourceRules: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]}
  validations: [{expression: "!object.metadata.name.startsWith('reject-')", message: "names reject-* are refused"}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: bench-no-reject}
spec: {policyName: bench-no-reject, validationActions: [Deny]}
`

// portcullisManifests are Portcullis's form of the same workload.
const portcullisManifests = `
apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: bench-user}
spec:
  user: {username: bench-user}
  secretRef: {name: bench-user-token}
---
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: bench-configmaps}
spec:
  effect: Allow
  subjects: [{kind: User, name: bench-user}]
  rules: [{namespaces: [bench], apiGroups: [""], resources: [configmaps], verbs: [create, get]}]
---
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: bench-stamp}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]}
  mutations: [{setLabels: {stamped: "yes"}}]
---
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: bench-no-reject}
spec:
  match: {resources: [{apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}]}
  validations: [{expression: "!object.metadata.name.startsWith('reject-')", message: "names reject-* are refused"}]
`

// envInfo is what a child tells the parent about its configuration.
type envInfo struct {
	Kubeconfig string `json:"kubeconfig"`
}

// runEnv is the child: it starts one configuration, writes its envInfo to
// infoPath, and stops it when its standard input closes.
func runEnv(config, cache, infoPath string) error {
	ctrl.SetLogger(logr.Discard())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "portcullis-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kubeconfig := filepath.Join(dir, "user.kubeconfig")
	var stop func() error
	switch config {
	case "builtins":
		token := randomToken()
		tokens := filepath.Join(dir, "tokens.csv")
		if err := os.WriteFile(tokens, []byte(token+","+benchUser+",1001,\"bench\"\n"), 0o600); err != nil {
			return err
		}
		cp, err := controlplane.Start(ctx, controlplane.Config{StateDir: filepath.Join(dir, "cp"), Builtins: &controlplane.Builtins{TokenAuthFile: tokens}, WithoutControllerManager: true})
		if err != nil {
			return err
		}
		stop = cp.Stop
		scheme, err := app.NewScheme()
		if err != nil {
			return err
		}
		c, err := client.New(cp.AdminConfig(), client.Options{Scheme: scheme})
		if err != nil {
			return err
		}
		if err := applyAll(ctx, c, builtinManifests); err != nil {
			return err
		}
		if err := cp.WriteTokenKubeconfig(kubeconfig, token); err != nil {
			return err
		}
	case "noop", "webhook", "auto":
		// The decision lines encoded as the operator writes them, and
		// thrown away: their cost is part of every request's.
		_, decisions := decision.Loggers(&zap.Options{DestWriter: io.Discard})
		o := devenv.Options{StateDir: filepath.Join(dir, "env"), WithoutControllerManager: true, DecisionLog: decisions}
		if cache == "off" {
			o.TokenCacheTTL, o.AuthorizedTTL, o.UnauthorizedTTL = apiserverconfig.NoCache, apiserverconfig.NoCache, apiserverconfig.NoCache
		} else {
			// The API server's defaults, as in clusters.
			o.TokenCacheTTL, o.AuthorizedTTL, o.UnauthorizedTTL = 2*time.Minute, 5*time.Minute, 30*time.Second
		}
		env, err := devenv.Start(ctx, o)
		if err != nil {
			return err
		}
		stop = env.Stop
		mode := "Webhook"
		if config == "auto" {
			mode = "Auto"
		}
		if err := setExecution(ctx, env.Client, mode); err != nil {
			return err
		}
		if err := applyAll(ctx, env.Client, portcullisManifests); err != nil {
			return err
		}
		token, err := env.StaticToken(ctx, benchUser, time.Minute)
		if err != nil {
			return err
		}
		if err := waitSettled(ctx, env.Client, mode); err != nil {
			return err
		}
		if err := env.ControlPlane.WriteTokenKubeconfig(kubeconfig, token); err != nil {
			return err
		}
		if config == "noop" {
			if err := waitServes(ctx, kubeconfig); err != nil {
				return err
			}
			restore, err := env.ServeWebhooksWith(noop{user: benchUser})
			if err != nil {
				return err
			}
			defer func() { _ = restore() }()
		}
	default:
		return fmt.Errorf("unknown configuration %q", config)
	}
	defer func() { _ = stop() }()
	if err := waitServes(ctx, kubeconfig); err != nil {
		return fmt.Errorf("%s does not serve the workload: %w", config, err)
	}
	b, _ := json.Marshal(envInfo{Kubeconfig: kubeconfig})
	if err := os.WriteFile(infoPath, b, 0o600); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent closes it
	return nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func applyAll(ctx context.Context, c client.Client, manifests string) error {
	for _, doc := range strings.Split(manifests, "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			return err
		}
		if len(u.Object) == 0 {
			continue
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("benchchain"), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	return nil
}

// setExecution sets the WebhookBundle's spec.admission.execution once the
// operator has created the bundle.
func setExecution(ctx context.Context, c client.Client, mode string) error {
	for {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("operator.portcullis.io/v1alpha1")
		u.SetKind("WebhookBundle")
		u.SetName("default")
		err := c.Patch(ctx, u, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"admission":{"execution":"`+mode+`"}}}`)))
		if err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitSettled waits until both admission policies are executed as mode
// says: natively with Auto, on the webhook otherwise.
func waitSettled(ctx context.Context, c client.Client, mode string) error {
	want := admissionv1alpha1.ExecutionWebhook
	if mode == "Auto" {
		want = admissionv1alpha1.ExecutionNative
	}
	for {
		var mp admissionv1alpha1.MutationPolicy
		var vp admissionv1alpha1.ValidationPolicy
		if c.Get(ctx, client.ObjectKey{Name: "bench-stamp"}, &mp) == nil && c.Get(ctx, client.ObjectKey{Name: "bench-no-reject"}, &vp) == nil &&
			settled(mp.Status.Execution, mp.Generation, want) && settled(vp.Status.Execution, vp.Generation, want) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the policies did not settle as %s: %v / %v", want, mp.Status.Execution, vp.Status.Execution)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func settled(x *admissionv1alpha1.ExecutionStatus, gen int64, want admissionv1alpha1.ExecutionMode) bool {
	return x != nil && x.ObservedGeneration == gen && x.Mode == want && x.Reason != admissionv1alpha1.ReasonHandingOver
}

// waitServes waits until the user's dry-run creates are labelled and a
// reject-* name is refused: every phase is in force.
func waitServes(ctx context.Context, kubeconfig string) error {
	cs, err := userClient(kubeconfig)
	if err != nil {
		return err
	}
	var last error
	for ctx.Err() == nil {
		cm, err := cs.CoreV1().ConfigMaps(benchNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		_, rerr := cs.CoreV1().ConfigMaps(benchNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "reject-probe"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case err != nil:
			last = err
		case cm.Labels["stamped"] != "yes":
			last = fmt.Errorf("not labelled: %v", cm.Labels)
		case rerr == nil || !apierrors.IsInvalid(rerr) && !apierrors.IsForbidden(rerr):
			last = fmt.Errorf("reject-probe: %v", rerr)
		default:
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
}

// noop is a webhook server wired like Portcullis that decides nothing: it
// authenticates every token as the user, allows every request, answers
// the workload's label patch, and refuses reject-* names, reading no more
// of each review than that takes.
type noop struct{ user string }

var labelPatch = []byte(`[{"op":"add","path":"/metadata/labels/stamped","value":"yes"}]`)

func (n noop) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	rw.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/authenticate":
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = fmt.Fprintf(rw, `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","status":{"authenticated":true,"user":{"username":%q,"groups":["system:authenticated"]}}}`, n.user)
	case "/authorize":
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(rw, `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","status":{"allowed":true,"reason":"no-op"}}`)
	default:
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(rw, "bad review", http.StatusBadRequest)
			return
		}
		resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		switch {
		case strings.HasSuffix(r.URL.Path, "/mutate"):
			pt := admissionv1.PatchTypeJSONPatch
			resp.Patch, resp.PatchType = labelPatch, &pt
			if !strings.Contains(string(review.Request.Object.Raw), `"labels"`) {
				resp.Patch = []byte(`[{"op":"add","path":"/metadata/labels","value":{"stamped":"yes"}}]`)
			}
		case strings.HasPrefix(review.Request.Name, "reject-"):
			resp.Allowed = false
			resp.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: "names reject-* are refused"}
		}
		_ = json.NewEncoder(rw).Encode(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
	}
}

func userClient(kubeconfig string) (*kubernetes.Clientset, error) {
	cfg, err := benchConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// benchConfig is the user's client configuration, unthrottled: the
// client must never be what limits a measure.
func benchConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst, cfg.Timeout = 1e6, 1e6, 30*time.Second
	return cfg, nil
}
