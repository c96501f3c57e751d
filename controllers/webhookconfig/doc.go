// Package webhookconfig keeps the admission webhook configurations the
// operator owns: it renders the desired configuration (endpoint, caBundle,
// rules, failure policy, lockout exemptions), creates it or replaces it
// whole when it differs (the API server's defaults aside), and watches it
// so that an edited or deleted configuration is restored, added fields
// included.
package webhookconfig
