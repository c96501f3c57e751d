// Package controlplane starts a real etcd, kube-apiserver and
// kube-controller-manager on free loopback ports, wired to the Portcullis
// webhook server the way a cluster admin wires a real cluster: the token
// webhook kubeconfig, the authorization webhook kubeconfig and the
// AuthorizationConfiguration rendered by internal/apiserverconfig, given to
// kube-apiserver as flags.
//
// It is built on controller-runtime's envtest (pkg/envtest), which runs and
// health-checks the processes, with three changes a wired API server needs:
//
//   - --authorization-mode is disabled, because kube-apiserver refuses it
//     together with --authorization-config (envtest defaults it to RBAC);
//   - everything listens on 127.0.0.1 only, never on "localhost" (which may
//     resolve to ::1);
//   - the state can persist (Config.StateDir): etcd's data, the API server's
//     certificates (long-lived, unlike envtest's one-week ones) and the
//     service-account signing key survive a restart, so `portcullis dev`
//     keeps its cluster between runs.
//
// kube-controller-manager (which envtest does not run) is started after the
// API server, wired as kubeadm wires it: a client-certificate kubeconfig
// for system:kube-controller-manager (also used to authenticate and
// authorize callers of its secure port), --use-service-account-credentials
// so that each controller acts as its own ServiceAccount in kube-system and
// goes through the authorizer chain as in a cluster, the service-account
// signing key, the serving CA as the root CA it publishes, leader election
// in kube-system, and its secure port on loopback with a certificate from
// the serving CA. Start returns once its /healthz passes and it holds its
// Lease. It runs the Controllers that work without nodes; with no kubelet
// or scheduler, pods stay Pending. Config.WithoutControllerManager leaves
// it out, for tests that need none of it.
//
// Users: AdminConfig is envtest's system:masters client certificate, which
// skips the token webhook and every authorizer (kube-apiserver lets
// system:masters through before the authorizer chain). To exercise the
// Portcullis chain, act as a real user with TokenConfig.
//
// The binaries come from `make control-plane` (hack/control-plane.sh); see
// AssetsDir. The tests need them and fail with that instruction otherwise.
package controlplane
