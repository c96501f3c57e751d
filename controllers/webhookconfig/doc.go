// Package webhookconfig keeps the admission webhook configurations the
// operator owns: it renders the desired configuration (endpoint, caBundle,
// rules, failure policy, lockout exemptions), server-side applies it, and
// watches it so that an edited or deleted configuration is restored.
package webhookconfig
