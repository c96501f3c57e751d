package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// whoami asks the API server who a bearer token is, as `kubectl auth whoami`
// does. err is the API error for a token that does not authenticate.
func whoami(ctx context.Context, t *testing.T, token string) (authenticationv1.UserInfo, error) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.ControlPlane.TokenConfig(token))
	if err != nil {
		t.Fatal(err)
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return authenticationv1.UserInfo{}, err
	}
	return r.Status.UserInfo, nil
}

// eventually polls until cond holds; the API server caches token answers
// for tokenCacheTTL, so changes are awaited, not assumed.
func eventually(t *testing.T, ctx context.Context, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: did not happen (last error: %v)", what, last)
	}
}

func expectUnauthorized(t *testing.T, ctx context.Context, what, token string) {
	t.Helper()
	eventually(t, ctx, what+" gets 401", func(ctx context.Context) (bool, error) {
		_, err := whoami(ctx, t, token)
		return apierrors.IsUnauthorized(err), err
	})
}

func apply(t *testing.T, ctx context.Context, manifest string) {
	t.Helper()
	if err := env.Apply(ctx, []byte(manifest)); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

func deleteObj(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Delete(context.Background(), obj); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("cleanup: %v", err)
	}
}

func kubectl(t *testing.T, ctx context.Context, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	out, _, err := env.ControlPlane.Kubectl(ctx, kubeconfig, args...)
	return out, err
}

func tokenKubeconfig(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "user.kubeconfig")
	if err := env.ControlPlane.WriteTokenKubeconfig(p, token); err != nil {
		t.Fatal(err)
	}
	return p
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func lines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }

func clientKey(name string) client.ObjectKey { return client.ObjectKey{Name: name} }

func writeFile(path, data string) error { return os.WriteFile(path, []byte(data), 0o600) }

// metricsClient reaches the operator's HTTPS /metrics, whose certificate
// is self-signed.
var metricsClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec G402: loopback test server

// scrape returns the operator's /metrics, read as the metrics reader.
func scrape(ctx context.Context) (string, error) {
	token, err := env.MetricsToken(ctx)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+env.MetricsAddr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := metricsClient.Do(req)
	if err == nil && resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return "", fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func metav1TypeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}
