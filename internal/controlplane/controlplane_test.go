package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/portcullis-io/portcullis/internal/apiserverconfig"
)

const (
	// kubeVersion is the version hack/control-plane.sh builds.
	kubeVersion = "v1.37.2"
	// aliceToken is the only token the fake token webhook accepts.
	aliceToken = "alice-token-0123456789"
	// testTimeout bounds one test's API calls after the control plane is up.
	testTimeout = 2 * time.Minute
	// outputTail is how much of the processes' output a failed test prints.
	outputTail = 16 << 10
)

// fakeWebhook plays the Portcullis webhook server: TokenReview v1 accepts
// aliceToken as alice in group devs, SubjectAccessReview v1 allows alice to
// get namespaces and has no opinion otherwise. It records every SAR.
type fakeWebhook struct {
	srv *httptest.Server

	mu   sync.Mutex
	sars []authorizationv1.SubjectAccessReviewSpec
}

func newFakeWebhook(t *testing.T) *fakeWebhook {
	t.Helper()
	f := &fakeWebhook{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+apiserverconfig.AuthenticatePath, func(w http.ResponseWriter, r *http.Request) {
		var tr authenticationv1.TokenReview
		if err := json.NewDecoder(r.Body).Decode(&tr); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		tr.Status = authenticationv1.TokenReviewStatus{}
		if tr.Spec.Token == aliceToken {
			tr.Status.Authenticated = true
			tr.Status.User = authenticationv1.UserInfo{Username: "alice", UID: "1001", Groups: []string{"devs"}}
		}
		writeJSON(w, &tr)
	})
	mux.HandleFunc("POST "+apiserverconfig.AuthorizePath, func(w http.ResponseWriter, r *http.Request) {
		var sar authorizationv1.SubjectAccessReview
		if err := json.NewDecoder(r.Body).Decode(&sar); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.sars = append(f.sars, sar.Spec)
		f.mu.Unlock()
		ra := sar.Spec.ResourceAttributes
		sar.Status = authorizationv1.SubjectAccessReviewStatus{}
		if sar.Spec.User == "alice" && ra != nil && ra.Resource == "namespaces" && ra.Verb == "get" {
			sar.Status.Allowed = true
			sar.Status.Reason = "fake: alice may get namespaces"
		}
		writeJSON(w, &sar)
	})
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// sawUser reports whether a SubjectAccessReview for user reached the
// webhook.
func (f *fakeWebhook) sawUser(user string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.ContainsFunc(f.sars, func(s authorizationv1.SubjectAccessReviewSpec) bool { return s.User == user })
}

// wiring points the API server at the fake, with every cache off so that
// each request reaches it.
func (f *fakeWebhook) wiring() apiserverconfig.Options {
	o := wiringFor(f.srv.URL)
	o.CABundle = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	return o
}

func wiringFor(url string) apiserverconfig.Options {
	return apiserverconfig.Options{
		URL:           url,
		TokenCacheTTL: apiserverconfig.NoCache,
		Authorization: &apiserverconfig.AuthorizationOptions{
			AuthorizedTTL:   apiserverconfig.NoCache,
			UnauthorizedTTL: apiserverconfig.NoCache,
		},
	}
}

// tailBuffer keeps the last outputTail bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - outputTail; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// startControlPlane starts a control plane for the test with the real
// binaries, stops it at cleanup, and prints the processes' output tail if
// the test failed.
func startControlPlane(t *testing.T, cfg Config) *ControlPlane {
	t.Helper()
	assets, err := AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	cfg.AssetsDir = assets
	out := &tailBuffer{}
	cfg.Out, cfg.Err = out, out
	started := time.Now()
	cp, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatalf("Start: %v\nprocess output (tail):\n%s", err, out)
	}
	t.Logf("control plane started in %s at %s", time.Since(started).Round(time.Millisecond), cp.APIServerURL())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process output (tail):\n%s", out)
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return cp
}

func clientset(t *testing.T, cfg *rest.Config) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func whoAmI(ctx context.Context, cs kubernetes.Interface) (authenticationv1.UserInfo, error) {
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return r.Status.UserInfo, nil
}

// serviceAccountToken creates a service account and returns a token for it.
func serviceAccountToken(ctx context.Context, t *testing.T, admin kubernetes.Interface, namespace, name string) string {
	t.Helper()
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// poll waits until get succeeds, for at most a minute.
func poll(t *testing.T, ctx context.Context, what string, get func(ctx context.Context) error) {
	t.Helper()
	var last error
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		last = get(ctx)
		return last == nil, nil
	}); err != nil {
		t.Fatalf("%s: %v (last: %v)", what, err, last)
	}
}

// TestWiredControlPlane runs the real API server against a fake webhook
// server and checks that requests take the path a wired cluster gives them.
func TestWiredControlPlane(t *testing.T) {
	hook := newFakeWebhook(t)
	cp := startControlPlane(t, Config{Wiring: hook.wiring()})
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	admin := clientset(t, cp.AdminConfig())

	t.Run("listens on loopback only", func(t *testing.T) {
		if !strings.HasPrefix(cp.APIServerURL(), "https://127.0.0.1:") {
			t.Errorf("APIServerURL = %s", cp.APIServerURL())
		}
	})

	t.Run("bearer token authenticated by the token webhook and authorized by the SAR webhook", func(t *testing.T) {
		alice := clientset(t, cp.TokenConfig(aliceToken))
		user, err := whoAmI(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if user.Username != "alice" || user.UID != "1001" || !slices.Contains(user.Groups, "devs") || !slices.Contains(user.Groups, "system:authenticated") {
			t.Errorf("SelfSubjectReview says %+v, want alice (1001) in devs and system:authenticated", user)
		}
		if !hook.sawUser("alice") {
			t.Error("the authorization webhook was not asked about alice's request")
		}
		// Allowed by the webhook only: RBAC gives alice nothing on namespaces.
		if _, err := alice.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Errorf("alice get namespace (allowed by the webhook): %v", err)
		}
		// No opinion from the webhook, then RBAC denies.
		if _, err := alice.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("alice list pods: err = %v, want 403 Forbidden", err)
		}
	})

	t.Run("unknown token is 401", func(t *testing.T) {
		_, err := whoAmI(ctx, clientset(t, cp.TokenConfig("not-a-known-token")))
		if !apierrors.IsUnauthorized(err) {
			t.Fatalf("err = %v, want 401 Unauthorized", err)
		}
	})

	t.Run("admin skips the webhooks", func(t *testing.T) {
		user, err := whoAmI(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		if user.Username != "admin" || !slices.Contains(user.Groups, "system:masters") {
			t.Errorf("admin is %+v", user)
		}
		if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "admin-works"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if hook.sawUser("admin") {
			t.Error("the authorization webhook was asked about system:masters")
		}
	})

	t.Run("matchConditions keep the operator and kube-system out of the webhook", func(t *testing.T) {
		for _, sa := range []struct{ namespace, name string }{
			{apiserverconfig.DefaultOperatorNamespace, apiserverconfig.DefaultOperatorServiceAccount},
			{"kube-system", "some-controller"},
		} {
			username := apiserverconfig.ServiceAccountUsername(sa.namespace, sa.name)
			token := serviceAccountToken(ctx, t, admin, sa.namespace, sa.name)
			user, err := whoAmI(ctx, clientset(t, cp.TokenConfig(token)))
			if err != nil {
				t.Fatal(err)
			}
			if user.Username != username {
				t.Errorf("service account token authenticated as %q, want %q", user.Username, username)
			}
			if hook.sawUser(username) {
				t.Errorf("the authorization webhook was asked about %s", username)
			}
		}
		// A service account elsewhere does reach the webhook.
		username := apiserverconfig.ServiceAccountUsername("default", "app")
		if _, err := whoAmI(ctx, clientset(t, cp.TokenConfig(serviceAccountToken(ctx, t, admin, "default", "app")))); err != nil {
			t.Fatal(err)
		}
		if !hook.sawUser(username) {
			t.Errorf("the authorization webhook was not asked about %s", username)
		}
	})

	t.Run("kubectl", func(t *testing.T) {
		dir := t.TempDir()
		adminKubeconfig := filepath.Join(dir, "admin.kubeconfig")
		if err := cp.WriteAdminKubeconfig(adminKubeconfig); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, err := cp.Kubectl(ctx, adminKubeconfig, "version", "-o", "json")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var v struct {
			ClientVersion, ServerVersion struct {
				GitVersion string `json:"gitVersion"`
			}
		}
		if err := json.Unmarshal([]byte(stdout), &v); err != nil {
			t.Fatalf("kubectl version output: %v\n%s", err, stdout)
		}
		if v.ClientVersion.GitVersion != kubeVersion || v.ServerVersion.GitVersion != kubeVersion {
			t.Errorf("kubectl version: client %q, server %q; want %s", v.ClientVersion.GitVersion, v.ServerVersion.GitVersion, kubeVersion)
		}

		// Alice through kubectl: the token kubeconfig, the token webhook
		// and the SAR webhook.
		aliceKubeconfig := filepath.Join(dir, "alice.kubeconfig")
		if err := cp.WriteTokenKubeconfig(aliceKubeconfig, aliceToken); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(aliceKubeconfig); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("token kubeconfig: %v, %v", st, err)
		}
		if stdout, _, err := cp.Kubectl(ctx, aliceKubeconfig, "get", "namespace", "default", "-o", "name"); err != nil || strings.TrimSpace(stdout) != "namespace/default" {
			t.Errorf("alice kubectl get namespace: %q, %v", stdout, err)
		}
		if _, _, err := cp.Kubectl(ctx, aliceKubeconfig, "get", "pods"); err == nil || !strings.Contains(err.Error(), "forbidden") {
			t.Errorf("alice kubectl get pods: err = %v, want forbidden", err)
		}

		// The default kubeconfig is the admin's.
		if stdout, _, err := cp.Kubectl(ctx, "", "get", "configmap", "admin-works", "-o", "name"); err != nil || strings.TrimSpace(stdout) != "configmap/admin-works" {
			t.Errorf("kubectl as admin: %q, %v", stdout, err)
		}
	})

	t.Run("kube-controller-manager runs the cluster's controllers", func(t *testing.T) {
		// Its secure port, on loopback, with a certificate from the
		// serving CA.
		if u := cp.ControllerManagerURL(); !strings.HasPrefix(u, "https://127.0.0.1:") {
			t.Fatalf("ControllerManagerURL = %q", u)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cp.ServingCA())
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
		if err := healthy(ctx, hc, cp.ControllerManagerURL()+"/healthz"); err != nil {
			t.Errorf("kube-controller-manager /healthz with the serving CA: %v", err)
		}

		// It leads: Start waited for its Lease.
		lease, err := admin.CoordinationV1().Leases("kube-system").Get(ctx, controllerManagerLease, metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			t.Fatalf("Lease kube-system/%s: %+v, %v", controllerManagerLease, lease, err)
		}

		// Each controller acts as its own ServiceAccount in kube-system.
		for _, sa := range []string{"namespace-controller", "replicaset-controller", "clusterrole-aggregation-controller", "generic-garbage-collector"} {
			poll(t, ctx, "ServiceAccount kube-system/"+sa, func(ctx context.Context) error {
				_, err := admin.CoreV1().ServiceAccounts("kube-system").Get(ctx, sa, metav1.GetOptions{})
				return err
			})
		}

		// The serviceaccount and root-CA publisher controllers fill a new
		// namespace; clusterrole aggregation fills the edit role.
		if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kcm-filled"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		poll(t, ctx, "the default ServiceAccount of a new namespace", func(ctx context.Context) error {
			_, err := admin.CoreV1().ServiceAccounts("kcm-filled").Get(ctx, "default", metav1.GetOptions{})
			return err
		})
		poll(t, ctx, "kube-root-ca.crt with the serving CA", func(ctx context.Context) error {
			cm, err := admin.CoreV1().ConfigMaps("kcm-filled").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			if err == nil && cm.Data["ca.crt"] != string(cp.ServingCA()) {
				return errors.New("ca.crt is not the serving CA")
			}
			return err
		})
		poll(t, ctx, "aggregated rules in the edit ClusterRole", func(ctx context.Context) error {
			role, err := admin.RbacV1().ClusterRoles().Get(ctx, "edit", metav1.GetOptions{})
			if err == nil && len(role.Rules) == 0 {
				return errors.New("no rules yet")
			}
			return err
		})

		// None of that went through the authorization webhook: the
		// controller manager and kube-system's service accounts are
		// outside its matchConditions.
		hook.mu.Lock()
		defer hook.mu.Unlock()
		for _, s := range hook.sars {
			if slices.Contains(apiserverconfig.ControlPlaneUsers, s.User) || strings.HasPrefix(s.User, "system:serviceaccount:kube-system:") {
				t.Errorf("the authorization webhook was asked about %s (%+v)", s.User, s.ResourceAttributes)
			}
		}
	})

	t.Run("temporary state is removed at Stop", func(t *testing.T) {
		dir := cp.StateDir()
		if err := cp.Stop(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("state dir %s still exists after Stop (stat: %v)", dir, err)
		}
	})
}

// TestStateDirSurvivesRestart starts twice on one StateDir: the second run
// sees the first run's objects and honours its service-account tokens.
func TestStateDirSurvivesRestart(t *testing.T) {
	hook := newFakeWebhook(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg := Config{StateDir: stateDir, Wiring: hook.wiring()}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()

	first := startControlPlane(t, cfg)
	admin := clientset(t, first.AdminConfig())
	if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "survivor"},
		Data:       map[string]string{"run": "first"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	saToken := serviceAccountToken(ctx, t, admin, "default", "persisted")
	firstURL := first.APIServerURL()
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{etcdSubdir, certsSubdir, wiringSubdir} {
		if st, err := os.Stat(filepath.Join(stateDir, sub)); err != nil || !st.IsDir() {
			t.Errorf("%s/%s after Stop: %v", stateDir, sub, err)
		}
	}

	second := startControlPlane(t, cfg)
	t.Logf("first run at %s, second at %s", firstURL, second.APIServerURL())
	cm, err := clientset(t, second.AdminConfig()).CoreV1().ConfigMaps("default").Get(ctx, "survivor", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the second run does not see the first run's ConfigMap: %v", err)
	}
	if cm.Data["run"] != "first" {
		t.Errorf("ConfigMap data = %v", cm.Data)
	}
	user, err := whoAmI(ctx, clientset(t, second.TokenConfig(saToken)))
	if err != nil {
		t.Fatalf("a service-account token from the first run: %v", err)
	}
	if want := apiserverconfig.ServiceAccountUsername("default", "persisted"); user.Username != want {
		t.Errorf("token authenticated as %q, want %q", user.Username, want)
	}
}
