package devenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The operator's ServiceAccount, as config/default names it.
const (
	OperatorServiceAccountNamespace = "portcullis-system"
	OperatorServiceAccount          = "portcullis-controller-manager"
)

// OperatorServiceAccountKubeconfig installs the ServiceAccount and the
// roles config/default (under root, the repository) gives the operator,
// rendered with kubectl kustomize as a cluster admin deploys them, and
// writes into dir a kubeconfig with a token of that ServiceAccount valid
// for ttl: what ProcessOptions.Kubeconfig returns to run the operator
// with least privilege.
func OperatorServiceAccountKubeconfig(ctx context.Context, e *Env, root, dir string, ttl time.Duration) (string, error) {
	out, stderr, err := e.ControlPlane.Kubectl(ctx, "", "kustomize", filepath.Join(root, "config", "default"))
	if err != nil {
		return "", fmt.Errorf("kubectl kustomize config/default: %w: %s", err, stderr)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	var rbac bytes.Buffer
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", err
		}
		switch u.GetKind() {
		case "ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding":
			b, err := u.MarshalJSON()
			if err != nil {
				return "", err
			}
			rbac.Write(b)
			rbac.WriteString("\n")
		}
	}
	if err := e.Apply(ctx, rbac.Bytes()); err != nil {
		return "", err
	}
	token, err := ServiceAccountToken(ctx, e.Client, OperatorServiceAccountNamespace, OperatorServiceAccount, ttl)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "operator-sa.kubeconfig")
	return path, e.ControlPlane.WriteTokenKubeconfig(path, token)
}

// ServiceAccountToken is a token of the ServiceAccount valid for ttl,
// which the API server itself authenticates.
func ServiceAccountToken(ctx context.Context, c client.Client, namespace, name string, ttl time.Duration) (string, error) {
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(ttl / time.Second))}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", fmt.Errorf("token of %s/%s: %w", namespace, name, err)
	}
	return tr.Status.Token, nil
}
