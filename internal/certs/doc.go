// Package certs makes and keeps the webhook server's CA and serving
// certificate as files: tls.crt, tls.key and ca.crt in one directory, the
// layout controller-runtime's webhook server and certwatcher read.
package certs
