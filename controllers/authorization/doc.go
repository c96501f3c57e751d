// Package authorization holds the AccessPolicy controller: it compiles each
// policy into the authz Registry, whose snapshot the /authorize webhook
// serves, and writes status once per reconcile on the leader.
package authorization
