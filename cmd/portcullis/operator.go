package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/portcullis-io/portcullis/internal/operator"
	"github.com/portcullis-io/portcullis/internal/webhookconfig"
)

type operatorOptions struct {
	namespace      string
	webhookHost    string
	webhookPort    int
	certDir        string
	certHosts      []string
	metricsAddr    string
	probeAddr      string
	leaderElect    bool
	enableHTTP2    bool
	runtimeConfig  map[string]string
	webhookURL     string
	webhookService string
	webhookSvcPort int32
}

func newOperatorOptions() *operatorOptions {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = operator.DefaultNamespace
	}
	return &operatorOptions{namespace: ns}
}

func (o *operatorOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.namespace, "namespace", o.namespace, "The operator's namespace: Secrets are read there only, and the leader-election Lease lives there. Defaults to $POD_NAMESPACE, else portcullis-system.")
	f.StringVar(&o.webhookHost, "webhook-host", "", "Address the webhook server listens on (all addresses when empty).")
	f.IntVar(&o.webhookPort, "webhook-port", operator.DefaultWebhookPort, "Port of the TLS webhook server.")
	f.StringVar(&o.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory with tls.crt and tls.key for the webhook server; reloaded when they change.")
	f.StringSliceVar(&o.certHosts, "cert-host", nil, "Create a CA and serving certificate for these host names or IPs in --cert-dir when missing or near expiry.")
	f.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus /metrics endpoint; 0 turns it off.")
	f.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "Elect a leader among replicas: only the leader writes status and generated Secrets; every replica serves webhooks.")
	f.BoolVar(&o.enableHTTP2, "enable-http2", false, "Serve HTTP/2 (off by default because of the HTTP/2 Rapid Reset and Stream Cancellation CVEs).")
	f.StringVar(&o.webhookURL, "webhook-url", "", "Base https URL at which the API server reaches the webhook server, for an operator outside the cluster; overrides --webhook-service.")
	f.StringVar(&o.webhookService, "webhook-service", "portcullis-webhook", "Name of the Service, in the operator's namespace, in front of the webhook server.")
	f.Int32Var(&o.webhookSvcPort, "webhook-service-port", 443, "Port of the webhook Service.")
	f.StringToStringVar(&o.runtimeConfig, "runtime-config", nil, "GROUP/VERSION=false turns an API group off: its CRDs are not installed and its controllers and webhook path not started, e.g. authentication.portcullis.io/v1alpha1=false.")
}

func (o *operatorOptions) run(ctx context.Context) error {
	rc, err := operator.ParseRuntimeConfig(o.runtimeConfig)
	if err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	return operator.Run(ctx, operator.Options{
		RESTConfig: cfg, Namespace: o.namespace,
		WebhookHost: o.webhookHost, WebhookPort: o.webhookPort,
		CertDir: o.certDir, CertHosts: o.certHosts,
		MetricsAddr: o.metricsAddr, ProbeAddr: o.probeAddr,
		LeaderElection: o.leaderElect, EnableHTTP2: o.enableHTTP2,
		RuntimeConfig: rc,
		Endpoint: webhookconfig.Endpoint{
			URL: o.webhookURL, ServiceNamespace: o.namespace, ServiceName: o.webhookService, ServicePort: o.webhookSvcPort,
		},
	})
}
