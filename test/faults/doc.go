// Package faults is the fault suite (make test-faults): the real control
// plane with the operator run as separate processes, wired as a cluster
// admin wires it and running as its own ServiceAccount with the role
// config/default installs, which the tests stop, kill, pause (SIGSTOP) and
// slow down (a delay at the webhook front, where a Service would be),
// while real users (bearer tokens, ServiceAccount tokens, client
// certificates) make requests through every phase. Each test asserts the
// behaviour docs/operations.md's fault table states.
//
// It runs when PORTCULLIS_FAULTS=1 (make test-faults sets it), so that
// go test ./... in make test does not start its control planes twice.
package faults
