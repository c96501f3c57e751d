// Package authentication holds the controllers of the
// authentication.portcullis.io kinds. Each reconciler gathers (the object and
// the Secrets it names), compiles it into the authn Registry, which publishes
// the snapshot the /authenticate webhook serves, and writes status once.
//
// Compilation runs on every replica, because every replica serves webhooks
// from its own snapshot; writes to the API (status, generated Secrets) are
// done by the leader only.
package authentication
