package reviewhttp

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"

	"github.com/portcullis-io/portcullis/internal/certs"
)

// Callers admits only callers that present a client certificate issued by
// CA with the common name CommonName: the API server's, from the rendered
// webhook kubeconfigs. It guards /authenticate and /authorize,
// which would otherwise tell anyone who can reach them whether a token is
// valid and what the policies allow.
//
// The certificate is verified once per connection, in the TLS handshake
// (TLSConfig: a certificate is asked of every client and verified if
// given, so callers of the other paths, admission, need none); each
// request then only checks that a verified certificate of CommonName came
// with it (Wrap).
type Callers struct {
	// CA is the PEM CA that issues the API server's client certificate,
	// looked at again every certs.CARecheck: a new one is used within
	// that time, without a restart.
	CA *certs.CAWatch
	// CommonName is the subject common name the API server's certificate
	// carries.
	CommonName string
}

// TLSConfig changes a server's TLS configuration to ask every client for
// a certificate and verify one that is given against the CA.
func (c *Callers) TLSConfig(base *tls.Config) {
	base.ClientAuth = tls.VerifyClientCertIfGiven
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cc := base.Clone()
		cc.GetConfigForClient = nil
		cc.ClientCAs = c.CA.Pool()
		if cc.ClientCAs == nil {
			cc.ClientCAs = x509.NewCertPool() // nothing verifies
		}
		return cc, nil
	}
}

// Wrap answers 401 to a caller without a verified client certificate of
// CommonName, and passes the others to next.
func (c *Callers) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			http.Error(rw, "a client certificate is required: only the API server may call this webhook", http.StatusUnauthorized)
			return
		}
		if r.TLS.VerifiedChains[0][0].Subject.CommonName != c.CommonName {
			http.Error(rw, "the client certificate is not the API server's", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(rw, r)
	})
}
