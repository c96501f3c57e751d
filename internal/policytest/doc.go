// Package policytest runs test suites of Portcullis policies offline, with
// the engines the webhooks serve (no copies of them): `portcullis test`.
// A suite is a YAML document of kind Test (cli.portcullis.io/v1alpha1)
// whose cases give a phase an input (a token, a SubjectAccessReview, an
// admission request) and say what it must answer.
package policytest
