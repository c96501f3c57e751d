// Package e2e drives a real etcd and kube-apiserver wired to the Portcullis
// operator, as real users do: bearer tokens through client-go and kubectl.
// The control-plane binaries come from hack/control-plane.sh (make test
// passes their directory in KUBEBUILDER_ASSETS).
package e2e
