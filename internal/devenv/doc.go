// Package devenv starts the local main job: a real etcd, kube-apiserver and
// kube-controller-manager (internal/controlplane) wired to an in-process
// Portcullis operator, the way a cluster admin wires them. `portcullis dev`
// (make run) and the end-to-end tests both use it, so the tests exercise
// what users run.
package devenv
