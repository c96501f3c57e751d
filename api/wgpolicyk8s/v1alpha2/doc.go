// Package v1alpha2 is the Policy Reports API of the Kubernetes Policy
// working group (wgpolicyk8s.io/v1alpha2 PolicyReport and
// ClusterPolicyReport), in which the background audit writes its results
// so that the tools that read it (Policy Reporter, kubectl) show them. The
// operator installs its CRDs only when the cluster has none: another tool
// (Kyverno) may own them.
// +kubebuilder:object:generate=true
// +groupName=wgpolicyk8s.io
package v1alpha2
