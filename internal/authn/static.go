package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"k8s.io/apiserver/pkg/authentication/user"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
)

// TokenBytes is the number of random bytes in a generated static token:
// 256 bits, beyond any brute-force search.
const TokenBytes = 32

// MinStaticTokenLength is the shortest token a Secret may hold. Shorter
// tokens are refused when compiling, so a typo such as an empty key never
// becomes a guessable credential.
const MinStaticTokenLength = 16

// Digest is the SHA-256 of a token. Tokens are looked up by digest, so
// the comparison is against a fixed-size hash, never the secret itself, and
// the snapshot holds no token in clear.
type Digest [sha256.Size]byte

// DigestOf returns the digest of a token.
func DigestOf(token string) Digest { return sha256.Sum256([]byte(token)) }

// GenerateToken returns a new random token, base64url without padding.
func GenerateToken() (string, error) {
	b := make([]byte, TokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// StaticEntry is one compiled StaticToken.
type StaticEntry struct {
	// Name of the StaticToken object, for logs and decisions.
	Name string
	// Created is the object's creation time: of several StaticTokens
	// holding one token, the oldest (then the first by name) is served.
	Created time.Time
	// Digest of the token held in the Secret.
	Digest Digest
	// User the token authenticates as. Shared read-only by all requests.
	User *user.DefaultInfo
	// ExpiresAt, when non-zero, is when the token stops authenticating.
	ExpiresAt time.Time
	// Disabled tokens are kept compiled so that status can say so, but
	// never authenticate.
	Disabled bool
}

// NewStaticEntry is the StaticToken st serving token: the one reading of
// its spec, for the controller and for portcullis test.
func NewStaticEntry(st *authnv1alpha1.StaticToken, token string) *StaticEntry {
	u := st.Spec.User
	var extra map[string][]string
	if len(u.Extra) > 0 {
		extra = make(map[string][]string, len(u.Extra))
		for k, v := range u.Extra {
			// A key without values, which the CRD refuses, is one no
			// impersonation check covers (Impersonations asks per value):
			// an object stored before that rule does not give it.
			if len(v) > 0 {
				extra[k] = append([]string(nil), v...)
			}
		}
	}
	e := &StaticEntry{
		Name:     st.Name,
		Created:  st.CreationTimestamp.Time,
		Digest:   DigestOf(token),
		User:     &user.DefaultInfo{Name: u.Username, UID: u.UID, Groups: append([]string(nil), u.Groups...), Extra: extra},
		Disabled: st.Spec.Disabled,
	}
	if st.Spec.ExpiresAt != nil {
		e.ExpiresAt = st.Spec.ExpiresAt.Time
	}
	return e
}

// ValidStaticToken checks a token read from a Secret.
func ValidStaticToken(token string) error {
	if len(token) < MinStaticTokenLength {
		return fmt.Errorf("token is shorter than %d bytes", MinStaticTokenLength)
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("token contains whitespace or control characters")
		}
	}
	return nil
}
