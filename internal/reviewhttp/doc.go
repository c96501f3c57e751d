// Package reviewhttp is the HTTP hardening every Portcullis webhook shares,
// in the manner of controller-runtime's admission http.go: POST only, JSON
// only, the body capped, the review's kind checked, panics recovered, the
// answer encoded whole before it is written. One copy, so a fix reaches
// every phase.
package reviewhttp
