package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
	operatorv1alpha1 "github.com/portcullis-io/portcullis/api/operator/v1alpha1"
	"github.com/portcullis-io/portcullis/internal/devenv"
)

// ns is where the traffic goes; victims are the ConfigMaps users read
// and bot is refused to delete.
const (
	ns      = "soak"
	victims = 100
)

const refusedByPolicy = "the data key forbidden is refused"

// fixtures, as in test/faults: users (StaticTokens, added by users()) in
// group soak-devs, and bot, a ServiceAccount, may edit ConfigMaps in soak
// by RBAC; an AccessPolicy forbids bot to delete them (Deny) and lets it
// read Secrets there (Allow); a MutationPolicy labels new ConfigMaps; a
// ValidationPolicy refuses a ConfigMap with the data key "forbidden".
const fixtures = `
apiVersion: v1
kind: Namespace
metadata: {name: soak}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: editor, namespace: soak}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [get, list, create, delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: editor, namespace: soak}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: editor}
subjects:
- {kind: Group, name: soak-devs, apiGroup: rbac.authorization.k8s.io}
- {kind: ServiceAccount, name: bot, namespace: soak}
---
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: bot-keeps-configmaps}
spec:
  effect: Deny
  subjects: [{kind: ServiceAccount, name: bot, namespace: soak}]
  rules: [{namespaces: [soak], apiGroups: [""], resources: [configmaps], verbs: [delete]}]
---
apiVersion: authorization.portcullis.io/v1alpha1
kind: AccessPolicy
metadata: {name: bot-reads-secrets}
spec:
  effect: Allow
  subjects: [{kind: ServiceAccount, name: bot, namespace: soak}]
  rules: [{namespaces: [soak], apiGroups: [""], resources: [secrets], verbs: [get]}]
---
apiVersion: admission.portcullis.io/v1alpha1
kind: MutationPolicy
metadata: {name: soak-mark}
spec:
  match:
    resources:
    - {apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE]}
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: soak}
  mutations:
  - setLabels: {mutated: "yes"}
---
apiVersion: admission.portcullis.io/v1alpha1
kind: ValidationPolicy
metadata: {name: soak-check}
spec:
  match:
    resources:
    - {apiGroups: [""], apiVersions: [v1], resources: [configmaps], operations: [CREATE, UPDATE]}
    namespaceSelector:
      matchLabels: {kubernetes.io/metadata.name: soak}
  action: Deny
  validations:
  - expression: "!has(object.data) || !('forbidden' in object.data)"
    message: "` + refusedByPolicy + `"
`

// repoRoot is the module's directory: where go.mod and config/default are,
// found from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "config", "default", "kustomization.yaml")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the portcullis repository (no go.mod and config/default above the working directory)")
		}
		dir = parent
	}
}

// buildOperator builds ./cmd/portcullis into dir.
func buildOperator(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "portcullis")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/portcullis")
	cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building the operator: %w", err)
	}
	return bin, nil
}

// startEnv starts the control plane and one operator process running as
// its own ServiceAccount, with config/default's RBAC.
func startEnv(ctx context.Context, root, state, binary, assets string, out io.Writer) (*devenv.Env, error) {
	return devenv.Start(ctx, devenv.Options{
		StateDir:  state,
		AssetsDir: assets,
		// devenv's short caches (5 s), so that the token and authorization
		// webhooks are called all along, not once per cluster default TTL.
		TokenCacheTTL:         devenv.DefaultTokenCacheTTL,
		AuthorizationCacheTTL: devenv.DefaultAuthorizationCacheTTL,
		// Nothing here needs it, and it would take CPU from the traffic.
		WithoutControllerManager: true,
		Out:                      out,
		Process: &devenv.ProcessOptions{
			Binary:   binary,
			Replicas: 1,
			Kubeconfig: func(ctx context.Context, e *devenv.Env) (string, error) {
				return devenv.OperatorServiceAccountKubeconfig(ctx, e, root, state, 6*time.Hour)
			},
		},
	})
}

// setUp puts admission on the webhook (execution: Webhook), applies the
// fixtures and n StaticToken users, creates bot, the victims and a Secret
// bot may read, and returns the users' tokens and bot's.
func setUp(ctx context.Context, e *devenv.Env, admin *kubernetes.Clientset, n int) (users []string, bot string, err error) {
	bundle := &operatorv1alpha1.WebhookBundle{ObjectMeta: metav1.ObjectMeta{Name: operatorv1alpha1.DefaultName}}
	var last error
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		last = e.Client.Patch(ctx, bundle, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"admission":{"execution":"Webhook"}}}`)))
		return last == nil, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("execution: Webhook: %w (last: %v)", err, last)
	}
	if err := e.Apply(ctx, []byte(fixtures)); err != nil {
		return nil, "", err
	}
	var m strings.Builder
	for i := range n {
		fmt.Fprintf(&m, `---
apiVersion: authentication.portcullis.io/v1alpha1
kind: StaticToken
metadata: {name: %[1]s}
spec:
  user: {username: %[1]s, groups: [soak-devs]}
  secretRef: {name: %[1]s-token, key: token}
`, userName(i))
	}
	if err := e.Apply(ctx, []byte(m.String())); err != nil {
		return nil, "", err
	}
	if users, err = userTokens(ctx, e, n); err != nil {
		return nil, "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bot"}}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, "", err
	}
	if bot, err = devenv.ServiceAccountToken(ctx, e.Client, ns, "bot", 6*time.Hour); err != nil {
		return nil, "", err
	}
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, "", err
	}
	for i := range victims {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: victimName(i)}}
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, "", err
		}
	}
	return users, bot, nil
}

func userName(i int) string   { return fmt.Sprintf("soak-user-%d", i) }
func victimName(i int) string { return fmt.Sprintf("victim-%d", i) }

// userTokens waits until the n StaticTokens are Ready and returns the
// tokens the operator generated for them.
func userTokens(ctx context.Context, e *devenv.Env, n int) ([]string, error) {
	var tokens []string
	var last string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var list authnv1alpha1.StaticTokenList
		if err := e.Client.List(ctx, &list); err != nil {
			last = err.Error()
			return false, nil
		}
		ready := map[string]bool{}
		for _, st := range list.Items {
			for _, c := range st.Status.Conditions {
				if c.Type == authnv1alpha1.ConditionReady && c.Status == metav1.ConditionTrue && c.ObservedGeneration == st.Generation {
					ready[st.Name] = true
				}
			}
		}
		var secrets corev1.SecretList
		if err := e.Client.List(ctx, &secrets, client.InNamespace(e.Namespace)); err != nil {
			last = err.Error()
			return false, nil
		}
		data := map[string]string{}
		for _, s := range secrets.Items {
			data[s.Name] = strings.TrimSpace(string(s.Data["token"]))
		}
		tokens = tokens[:0]
		for i := range n {
			name := userName(i)
			if !ready[name] || data[name+"-token"] == "" {
				last = fmt.Sprintf("%d of %d StaticTokens ready; %s is not", len(ready), n, name)
				return false, nil
			}
			tokens = append(tokens, data[name+"-token"])
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("StaticTokens: %w (last: %s)", err, last)
	}
	return tokens, nil
}

// logs is the tail of every log under state: the operator's and the
// control plane's.
func logs(state string) string {
	paths, _ := filepath.Glob(filepath.Join(state, "*.log"))
	var b strings.Builder
	for _, p := range paths {
		data, _ := os.ReadFile(p)
		if len(data) > 8<<10 {
			data = data[len(data)-8<<10:]
		}
		fmt.Fprintf(&b, "\n--- %s (tail)\n%s", filepath.Base(p), data)
	}
	return b.String()
}
