// Package app is the operator's composition root: it wires the
// controller-runtime manager, its webhook server, the CRD installer, and
// each phase's engine, controllers and handler, for the groups
// --runtime-config leaves on. Everything is passed explicitly; nothing
// registers itself. `portcullis operator` (cmd/portcullis) runs it, and
// the test harness (internal/devenv) runs the same Run in process.
package app
