package jwks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultRefreshInterval is how often a remote key set is fetched again when
// RemoteOptions.RefreshInterval is zero; it is the CRD's default too.
// Issuers publish a new key well before they sign with it, and a token
// naming a key we have not seen triggers an early refetch anyway, so the
// periodic fetch only has to catch removed keys.
const DefaultRefreshInterval = time.Hour

// DefaultMinRefetchInterval is the least time between two fetches when
// RemoteOptions.MinRefetchInterval is zero. Refetches are triggered by
// tokens that name an unknown kid, which anyone can forge: without a limit
// each forged token would cost a request to the issuer. Ten seconds still
// picks up a rotated key within seconds of its first use.
const DefaultMinRefetchInterval = 10 * time.Second

// FetchTimeout bounds one fetch: connection, TLS handshake, headers and
// body. A token that triggered a refetch waits for it (or for its own
// request's deadline, whichever comes first), so this must stay well under
// the API server's webhook timeouts; a healthy issuer answers in
// milliseconds.
const FetchTimeout = 10 * time.Second

// maxRedirects bounds the redirects followed to reach a key set. Some
// issuers move their JWKS behind a redirect; a chain longer than this is a
// loop or a misconfiguration.
const maxRedirects = 3

// fetchKey is the single singleflight key: there is one document per set.
const fetchKey = "jwks"

// RemoteOptions configures NewRemote.
type RemoteOptions struct {
	// URL is the https address of the JWKS document.
	URL string
	// CAPEM is PEM-encoded CA certificates to verify URL's server
	// certificate with, instead of the system roots. Empty means the system
	// roots. It must be empty when Client is set.
	CAPEM []byte
	// RefreshInterval is how often the set is fetched again in the
	// background; DefaultRefreshInterval when zero. Any positive value is
	// taken, so that tests run fast: the caller bounds what users may set
	// (a minute, say) so that an issuer is not polled in a tight loop.
	RefreshInterval time.Duration
	// MinRefetchInterval is the least time between a fetch and a refetch
	// triggered by a token with an unknown kid; DefaultMinRefetchInterval
	// when zero.
	MinRefetchInterval time.Duration
	// Client replaces the HTTP client built from CAPEM; for tests. Its TLS
	// and redirect policies are the caller's; each fetch is still bounded by
	// FetchTimeout.
	Client *http.Client
	// Now replaces time.Now; for tests of the refetch rate limit.
	Now func() time.Time
}

// RemoteKeySet is a key set served at an https URL. It holds the last good
// copy of the document behind an atomic.Pointer, so that VerifySignature
// takes no lock unless a token names a key it does not have. It is safe for
// concurrent use.
type RemoteKeySet struct {
	url        string
	client     *http.Client
	ownClient  bool
	minRefetch time.Duration
	now        func() time.Time
	// ctx is NewRemote's context. Fetches run under it rather than under a
	// request's context, because one fetch is shared by every request that
	// waits for it and one of them giving up must not fail the others.
	ctx context.Context

	keys  atomic.Pointer[keySet]
	state atomic.Pointer[fetchState]
	// lastAttempt is now() at the start of the last fetch, in Unix
	// nanoseconds; the refetch rate limit counts from it.
	lastAttempt atomic.Int64
	// inflight is true while a fetch runs, so that a token arriving during
	// a fetch waits for it instead of being turned away by the rate limit.
	inflight atomic.Bool
	// fetches makes every fetch a single flight: concurrent refetches
	// share one request, and a refetch never overlaps the periodic one.
	fetches singleflight.Group
}

// fetchState is the outcome of the last fetch; replaced whole.
type fetchState struct {
	lastSuccess time.Time
	err         error
}

// NewRemote fetches the key set at opts.URL and returns it when the fetch
// succeeded and the document is valid (see ParseJWKS): a broken URL, CA or
// document is an error here, for the object's status, rather than a
// verifier that fails every token. It then refreshes the set in the
// background every RefreshInterval until ctx is done; a failed refresh keeps
// the last good keys and is reported by LastError. After ctx is done the set
// keeps verifying with the keys it has and fetches no more: the caller
// cancels ctx when it replaces or drops the set, or its goroutine leaks.
func NewRemote(ctx context.Context, opts RemoteOptions) (*RemoteKeySet, error) {
	if err := checkURL(opts.URL); err != nil {
		return nil, err
	}
	refresh, err := interval("RefreshInterval", opts.RefreshInterval, DefaultRefreshInterval)
	if err != nil {
		return nil, err
	}
	minRefetch, err := interval("MinRefetchInterval", opts.MinRefetchInterval, DefaultMinRefetchInterval)
	if err != nil {
		return nil, err
	}
	r := &RemoteKeySet{
		url:        opts.URL,
		client:     opts.Client,
		minRefetch: minRefetch,
		now:        opts.Now,
		ctx:        ctx,
	}
	if r.now == nil {
		r.now = time.Now
	}
	switch {
	case r.client != nil && len(opts.CAPEM) > 0:
		return nil, errors.New("jwks: RemoteOptions.Client and CAPEM are mutually exclusive")
	case r.client == nil:
		if r.client, err = newHTTPClient(opts.CAPEM); err != nil {
			return nil, err
		}
		r.ownClient = true
	}
	if err := r.fetch(); err != nil {
		if r.ownClient {
			r.client.CloseIdleConnections()
		}
		return nil, err
	}
	go r.run(refresh)
	return r, nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("jwks: invalid URL: %w", err)
	case u.Scheme != "https":
		return fmt.Errorf("jwks: URL %s is not https", u.Redacted())
	case u.Host == "":
		return fmt.Errorf("jwks: URL %s has no host", u.Redacted())
	case u.User != nil:
		// Credentials in the URL would end up in errors, logs and status.
		return fmt.Errorf("jwks: URL %s must not hold credentials", u.Redacted())
	}
	return nil
}

func interval(name string, d, def time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("jwks: %s %v is negative", name, d)
	case d == 0:
		return def, nil
	}
	return d, nil
}

// newHTTPClient builds the client for one key set: TLS 1.2 at least,
// verified against caPEM or the system roots, https-only redirects,
// FetchTimeout overall.
func newHTTPClient(caPEM []byte) (*http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("jwks: certificateAuthority holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	return &http.Client{
		Timeout: FetchTimeout,
		Transport: &http.Transport{
			// The operator may reach the issuer through an egress proxy.
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     tlsConfig,
			TLSHandshakeTimeout: FetchTimeout,
			// One document, fetched rarely: keep one connection at most.
			MaxIdleConns:    1,
			IdleConnTimeout: 90 * time.Second,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to %s refused: not https", req.URL.Redacted())
			}
			if len(via) > maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			return nil
		},
	}, nil
}

// run refreshes the set every interval until r.ctx is done.
func (r *RemoteKeySet) run(every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-r.ctx.Done():
			if r.ownClient {
				r.client.CloseIdleConnections()
			}
			return
		case <-ticker.C:
			if r.ctx.Err() != nil {
				// select picks at random when both are ready.
				continue
			}
			// A failure is kept for LastError and the last good keys
			// stay in use; the next tick or an unknown kid tries again.
			_, _, _ = r.fetches.Do(fetchKey, func() (any, error) {
				return nil, r.fetch()
			})
		}
	}
}

// VerifySignature verifies jwt like StaticKeySet.VerifySignature. When the
// token names a kid the set does not have (or, without a kid, the set has
// no key for its algorithm), the issuer may have rotated its keys: the set
// is fetched again, at most once per MinRefetchInterval and shared by all
// tokens waiting, and the token is verified against the new keys. It
// implements go-oidc's KeySet.
func (r *RemoteKeySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := parseToken(jwt)
	if err != nil {
		return nil, err
	}
	keys := r.keys.Load()
	payload, missing, err := keys.verify(jws)
	if !missing {
		return payload, err
	}
	ferr := r.refetch(ctx)
	// Try again whenever the keys changed, even when this call's refetch
	// was refused: another token's fetch may have brought the key.
	if now := r.keys.Load(); now != keys {
		payload, _, err = now.verify(jws)
		return payload, err
	}
	if ferr != nil {
		return nil, fmt.Errorf("%w (refetch: %v)", err, ferr)
	}
	return nil, err
}

// errRateLimited says a refetch was skipped because the last fetch is
// more recent than MinRefetchInterval.
var errRateLimited = errors.New("last fetch too recent")

// refetch fetches the set again unless the last fetch is more recent than
// minRefetch, joining a fetch already running. It returns when the fetch is
// over or ctx is done.
func (r *RemoteKeySet) refetch(ctx context.Context) error {
	if r.ctx.Err() != nil {
		return errors.New("key set stopped")
	}
	// Fast path for a flood of unknown kids: no lock, no goroutine.
	if !r.due() && !r.inflight.Load() {
		return errRateLimited
	}
	ch := r.fetches.DoChan(fetchKey, func() (any, error) {
		// Checked again inside the flight: a fetch may have finished
		// between the check above and this one.
		if !r.due() {
			return nil, errRateLimited
		}
		return nil, r.fetch()
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *RemoteKeySet) due() bool {
	return r.now().Sub(time.Unix(0, r.lastAttempt.Load())) >= r.minRefetch
}

// fetch gets, parses and publishes the document. Calls never overlap: the
// first runs in NewRemote before run starts, the others in r.fetches.
func (r *RemoteKeySet) fetch() error {
	r.inflight.Store(true)
	defer r.inflight.Store(false)
	r.lastAttempt.Store(r.now().UnixNano())
	keys, err := r.get()
	if err != nil {
		st := &fetchState{err: err}
		if prev := r.state.Load(); prev != nil {
			st.lastSuccess = prev.lastSuccess
		}
		r.state.Store(st)
		return err
	}
	r.keys.Store(keys)
	r.state.Store(&fetchState{lastSuccess: r.now()})
	return nil
}

func (r *RemoteKeySet) get() (*keySet, error) {
	ctx, cancel := context.WithTimeout(r.ctx, FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: fetching key set: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		// The body is not quoted: it may be a large HTML error page.
		return nil, fmt.Errorf("jwks: fetching key set from %s: HTTP status %s", r.url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks: reading key set from %s: %w", r.url, err)
	}
	keys, err := parseKeySet(body)
	if err != nil {
		return nil, fmt.Errorf("jwks: key set from %s: %w", r.url, err)
	}
	return keys, nil
}

// Len returns the number of signing keys in the current set, for the
// object's status.
func (r *RemoteKeySet) Len() int {
	return len(r.keys.Load().keys)
}

// LastError returns the error of the last fetch, nil when it succeeded. The
// keys in use are those of the last successful fetch either way.
func (r *RemoteKeySet) LastError() error {
	return r.state.Load().err
}

// LastFetch returns when the keys in use were fetched: the time of the last
// successful fetch.
func (r *RemoteKeySet) LastFetch() time.Time {
	return r.state.Load().lastSuccess
}
