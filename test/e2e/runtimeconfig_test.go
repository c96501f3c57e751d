package e2e

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/portcullis-io/portcullis/internal/devenv"
)

// With --runtime-config=authentication.portcullis.io/v1alpha1=false the
// group's CRDs are not installed and /authenticate is not served.
func TestRuntimeConfigTurnsAGroupOff(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	// The operator alone is under test: no controller manager.
	off, err := devenv.Start(ctx, devenv.Options{RuntimeConfig: map[string]string{"authentication.portcullis.io/v1alpha1": "false"}, WithoutControllerManager: true, DecisionLog: decisionLog})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = off.Stop() })
	if off.ControlPlane.ControllerManagerURL() != "" {
		t.Error("WithoutControllerManager started kube-controller-manager")
	}
	if err := off.Client.Get(ctx, client.ObjectKey{Namespace: "kube-system", Name: "kube-controller-manager"}, &coordinationv1.Lease{}); !apierrors.IsNotFound(err) {
		t.Errorf("WithoutControllerManager: the controller manager's Lease: want not found, got %v", err)
	}

	for _, name := range []string{"statictokens.authentication.portcullis.io", "jwtauthenticators.authentication.portcullis.io"} {
		err := off.Client.Get(ctx, client.ObjectKey{Name: name}, &apiextensionsv1.CustomResourceDefinition{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("CRD %s: want not found, got %v", name, err)
		}
	}
	// The shared env has them: the switch, not the build, made the difference.
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "statictokens.authentication.portcullis.io"}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
		t.Fatalf("the default env lacks the CRD: %v", err)
	}

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec: loopback test server
	resp, err := hc.Post(off.WebhookURL+"/authenticate", "application/json", strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/authenticate with the group off: status %d, want 404", resp.StatusCode)
	}
}
