// Package operator holds the WebhookBundle controller: it keeps the
// singleton "default" in existence and writes its status, the operator's
// dashboard (certificate, CRDs, webhook configurations, whether the API
// server has been seen calling, policy counts), once per reconcile on the
// leader.
package operator
