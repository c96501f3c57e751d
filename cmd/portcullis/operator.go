package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/portcullis-io/portcullis/cmd/portcullis/app"
	"github.com/portcullis-io/portcullis/controllers/webhookconfig"
)

type operatorOptions struct {
	namespace        string
	webhookHost      string
	webhookPort      int
	certDir          string
	certHosts        []string
	certSecret       string
	metricsAddr      string
	metricsSecure    bool
	authnCallers     bool
	admissionCallers bool
	probeAddr        string
	leaderElect      bool
	enableHTTP2      bool
	runtimeConfig    map[string]string
	webhookURL       string
	webhookService   string
	webhookSvcPort   int32
	mutatingFP       string
	validatingFP     string
	mutatingTO       int32
	validatingTO     int32
	shutdownDrain    time.Duration
	saIssuers        []string
	// decisionLog is set with the loggers, from the --zap-* flags.
	decisionLog logr.Logger
}

func newOperatorOptions() *operatorOptions {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = app.DefaultNamespace
	}
	return &operatorOptions{namespace: ns}
}

func (o *operatorOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.namespace, "namespace", o.namespace, "The operator's namespace: Secrets are read there only, and the leader-election Lease lives there. Defaults to $POD_NAMESPACE, else portcullis-system.")
	f.StringVar(&o.webhookHost, "webhook-host", "", "Address the webhook server listens on (all addresses when empty).")
	f.IntVar(&o.webhookPort, "webhook-port", app.DefaultWebhookPort, "Port of the TLS webhook server.")
	f.StringVar(&o.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Directory with tls.crt and tls.key for the webhook server; reloaded when they change.")
	f.StringVar(&o.certSecret, "cert-secret", "", "Keep the CA and serving certificate in this Secret of the operator's namespace, shared by every replica and renewed by the leader (created when absent); empty keeps them in --cert-dir only.")
	f.StringSliceVar(&o.certHosts, "cert-host", nil, "Create a CA and serving certificate for these host names or IPs in --cert-dir when missing or near expiry.")
	f.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus /metrics endpoint, HTTPS behind authentication and authorization (a bearer token allowed to get /metrics); 0 turns it off.")
	f.BoolVar(&o.authnCallers, "authenticate-callers", true, "Answer /authenticate and /authorize only to the API server's client certificate (common name "+app.APIServerClientName+", issued by the webhook CA: the published wiring Secret and portcullis apiserver-config carry it); others get 401. false answers anyone who can reach the port.")
	f.BoolVar(&o.admissionCallers, "authenticate-admission-callers", false, "Answer the admission webhooks only to the same certificate too: the API server presents it there when given the rendered AdmissionConfiguration (--admission-control-config-file).")
	f.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve /metrics over HTTPS behind authentication and authorization; false serves plain HTTP to anyone.")
	f.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	f.BoolVar(&o.leaderElect, "leader-elect", true, "Elect a leader among replicas: only the leader writes status and generated Secrets; every replica serves webhooks.")
	f.BoolVar(&o.enableHTTP2, "enable-http2", false, "Serve HTTP/2 (off by default because of the HTTP/2 Rapid Reset and Stream Cancellation CVEs).")
	f.StringVar(&o.webhookURL, "webhook-url", "", "Base https URL at which the API server reaches the webhook server, for an operator outside the cluster; overrides --webhook-service.")
	f.StringVar(&o.webhookService, "webhook-service", "portcullis-webhook", "Name of the Service, in the operator's namespace, in front of the webhook server.")
	f.Int32Var(&o.webhookSvcPort, "webhook-service-port", 443, "Port of the webhook Service.")
	f.StringVar(&o.mutatingFP, "mutating-failure-policy", "Ignore", "failurePolicy of the mutating webhook: Ignore (a mutation that cannot be applied is skipped) or Fail.")
	f.StringVar(&o.validatingFP, "validating-failure-policy", "Fail", "failurePolicy of the validating webhook: Fail (a request that cannot be checked is rejected) or Ignore.")
	f.Int32Var(&o.mutatingTO, "mutating-timeout-seconds", 3, "timeoutSeconds of the mutating webhook (1-30).")
	f.Int32Var(&o.validatingTO, "validating-timeout-seconds", 5, "timeoutSeconds of the validating webhook (1-30).")
	f.DurationVar(&o.shutdownDrain, "shutdown-drain", app.DefaultShutdownDrain, "How long the webhook server keeps serving after SIGTERM, closing each connection after its answer, so that the API server moves to other replicas without a failed request; keep it below the Pod's terminationGracePeriodSeconds. 0 stops at once.")
	f.StringSliceVar(&o.saIssuers, "service-account-issuer", nil, "The API server's --service-account-issuer values after the first (its discovery document names only the first, which is read from it): no JWTAuthenticator may name any of them.")
	f.StringToStringVar(&o.runtimeConfig, "runtime-config", nil, "GROUP/VERSION=false turns an API group off: its CRDs are not installed and its controllers and webhook path not started, e.g. authentication.portcullis.io/v1alpha1=false.")
}

func (o *operatorOptions) run(ctx context.Context) error {
	rc, err := app.ParseRuntimeConfig(o.runtimeConfig)
	if err != nil {
		return err
	}
	for name, fp := range map[string]string{"--mutating-failure-policy": o.mutatingFP, "--validating-failure-policy": o.validatingFP} {
		if fp != string(admissionregistrationv1.Ignore) && fp != string(admissionregistrationv1.Fail) {
			return fmt.Errorf("%s=%q: want Ignore or Fail", name, fp)
		}
	}
	for name, to := range map[string]int32{"--mutating-timeout-seconds": o.mutatingTO, "--validating-timeout-seconds": o.validatingTO} {
		if to < 1 || to > 30 {
			return fmt.Errorf("%s=%d: the API server accepts 1 to 30", name, to)
		}
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	return app.Run(ctx, app.Options{
		RESTConfig: cfg, Namespace: o.namespace, DecisionLog: o.decisionLog,
		WebhookHost: o.webhookHost, WebhookPort: o.webhookPort,
		CertDir: o.certDir, CertHosts: o.certHosts, CertSecret: o.certSecret,
		MetricsAddr: o.metricsAddr, InsecureMetrics: !o.metricsSecure, ProbeAddr: o.probeAddr,
		AuthenticateCallers: o.authnCallers, AuthenticateAdmissionCallers: o.admissionCallers,
		LeaderElection: o.leaderElect, EnableHTTP2: o.enableHTTP2, ShutdownDrain: drainOption(o.shutdownDrain),
		RuntimeConfig:            rc,
		ServiceAccountIssuers:    o.saIssuers,
		MutatingFailurePolicy:    admissionregistrationv1.FailurePolicyType(o.mutatingFP),
		ValidatingFailurePolicy:  admissionregistrationv1.FailurePolicyType(o.validatingFP),
		MutatingTimeoutSeconds:   o.mutatingTO,
		ValidatingTimeoutSeconds: o.validatingTO,
		Endpoint: webhookconfig.Endpoint{
			URL: o.webhookURL, ServiceNamespace: o.namespace, ServiceName: o.webhookService, ServicePort: o.webhookSvcPort,
		},
	})
}

// drainOption maps the flag's 0 (stop at once) to Options' negative.
func drainOption(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
