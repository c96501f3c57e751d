package app

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// The API server's discovery document, which it serves when
// --service-account-issuer is set; bound to every service account by
// default (system:service-account-issuer-discovery).
// +kubebuilder:rbac:urls=/.well-known/openid-configuration,verbs=get

// serviceAccountIssuers reads the API server's service-account issuer
// from its discovery document, the first time it can be read, for the
// JWTAuthenticator checks (authn.ValidateJWTAuthenticatorSpec). Until
// then, and on an API server that serves none, it returns none, and each
// call tries again, at most every retry.
type serviceAccountIssuers struct {
	cfg   *rest.Config
	log   logr.Logger
	retry time.Duration

	mu      sync.Mutex
	issuers []string
	read    bool
	tried   time.Time
}

// discoveryPath is the API server's OpenID discovery document.
const discoveryPath = "/.well-known/openid-configuration"

// Get returns the issuers, reading them if they have not been read.
func (s *serviceAccountIssuers) Get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.read || time.Since(s.tried) < s.retry {
		return s.issuers
	}
	s.tried = time.Now()
	dc, err := discovery.NewDiscoveryClientForConfig(s.cfg)
	if err != nil {
		s.log.Error(err, "reading the service-account issuer")
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := dc.RESTClient().Get().AbsPath(discoveryPath).DoRaw(ctx)
	if err != nil {
		s.log.Info("the API server's service-account issuer could not be read: JWTAuthenticators are not checked against it yet", "error", err.Error())
		return nil
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Issuer == "" {
		s.log.Info("the API server's discovery document names no issuer", "path", discoveryPath)
		return nil
	}
	s.issuers, s.read = []string{doc.Issuer}, true
	s.log.Info("JWTAuthenticators may not name the API server's service-account issuer", "issuer", doc.Issuer)
	return s.issuers
}
