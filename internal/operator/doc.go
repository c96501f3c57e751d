// Package operator wires the Portcullis operator: the controller-runtime
// manager, its webhook server, the CRD installer, and each phase's engine,
// controllers and handler, for the groups --runtime-config leaves on.
// Everything is passed explicitly; nothing registers itself.
package operator
