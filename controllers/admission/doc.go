// Package admission holds the MutationPolicy and ValidationPolicy
// controllers: each compiles its kind into the admission registries whose
// snapshots /mutate and /validate serve, writes status once per reconcile on
// the leader, and signals the webhook configuration reconciler so the
// configurations' rules follow the loaded policies.
package admission
