package app

import (
	"context"
	"encoding/json"
	"fmt"
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
// JWTAuthenticator checks (authn.ValidateJWTAuthenticatorSpec). The
// document names the first --service-account-issuer only; an API server
// given several (while rotating) also refuses the others for its own JWT
// authenticators, so the operator is told them (its own
// --service-account-issuer) and Get returns them with the one read. Until
// the document is read, Get returns only those and says they are not all,
// trying again at most every retry; the controller checks
// JWTAuthenticators again until it knows.
type serviceAccountIssuers struct {
	cfg   *rest.Config
	log   logr.Logger
	retry time.Duration
	// configured are the issuers the operator was told, beyond the
	// document's.
	configured []string

	mu      sync.Mutex
	issuers []string
	read    bool
	tried   time.Time
}

// discoveryPath is the API server's OpenID discovery document.
const discoveryPath = "/.well-known/openid-configuration"

// Get returns the issuers, and whether they are known, reading them if
// they are not and no read was tried in the last retry. No lock is held
// while reading.
func (s *serviceAccountIssuers) Get() ([]string, bool) {
	s.mu.Lock()
	if s.read || time.Since(s.tried) < s.retry {
		defer s.mu.Unlock()
		if !s.read {
			return s.configured, false
		}
		return s.issuers, true
	}
	s.tried = time.Now()
	s.mu.Unlock()

	issuer, err := s.fetch()
	if err != nil {
		s.log.Info("the API server's service-account issuer could not be read: JWTAuthenticators are not checked against it yet", "error", err.Error())
		return s.configured, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.read {
		s.issuers, s.read = append([]string{issuer}, s.configured...), true
		s.log.Info("JWTAuthenticators may not name the API server's service-account issuers", "issuers", s.issuers)
	}
	return s.issuers, true
}

// fetch reads the issuer of the discovery document.
func (s *serviceAccountIssuers) fetch() (string, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(s.cfg)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := dc.RESTClient().Get().AbsPath(discoveryPath).DoRaw(ctx)
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("%s: %w", discoveryPath, err)
	}
	if doc.Issuer == "" {
		return "", fmt.Errorf("%s names no issuer", discoveryPath)
	}
	return doc.Issuer, nil
}
