package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apiserver/pkg/authentication/user"

	authnv1alpha1 "github.com/portcullis-io/portcullis/api/authentication/v1alpha1"
)

const (
	bobToken   = "bob-token-0123456789abcdef"
	aliceToken = "alice-token-0123456789abcdef"
)

func staticEntry(name, token, username string) *StaticEntry {
	return &StaticEntry{
		Name:   name,
		Digest: DigestOf(token),
		User:   &user.DefaultInfo{Name: username, UID: name + "-uid", Groups: []string{"developers"}, Extra: map[string][]string{"team": {"caribou"}}},
	}
}

func TestStaticTokens(t *testing.T) {
	expiring := func(name, token string, at time.Time) *StaticEntry {
		e := staticEntry(name, token, name)
		e.ExpiresAt = at
		return e
	}
	disabled := func(name, token string) *StaticEntry {
		e := staticEntry(name, token, name)
		e.Disabled = true
		return e
	}
	jwtShaped := "aaaa.bbbb.cccc-static-token"

	tests := []struct {
		name    string
		entries []*StaticEntry
		token   string
		// want* describe the expected answer; wantUser "" means refused.
		wantUser   string
		wantKind   string
		wantName   string
		wantReason string
	}{
		{
			name:     "valid",
			entries:  []*StaticEntry{staticEntry("bob", bobToken, "bob"), staticEntry("alice", aliceToken, "alice")},
			token:    bobToken,
			wantUser: "bob", wantKind: KindStaticToken, wantName: "bob",
		},
		{
			name:       "unknown token",
			entries:    []*StaticEntry{staticEntry("bob", bobToken, "bob")},
			token:      "not-a-known-token-0123456789",
			wantReason: "unknown token",
		},
		{
			name:       "prefix of a known token",
			entries:    []*StaticEntry{staticEntry("bob", bobToken, "bob")},
			token:      bobToken[:len(bobToken)-1],
			wantReason: "unknown token",
		},
		{
			name:       "empty token",
			entries:    []*StaticEntry{staticEntry("bob", bobToken, "bob")},
			token:      "",
			wantReason: "empty token",
		},
		{
			name:       "expired",
			entries:    []*StaticEntry{expiring("bob", bobToken, testNow.Add(-time.Second))},
			token:      bobToken,
			wantKind:   KindStaticToken,
			wantName:   "bob",
			wantReason: "token expired",
		},
		{
			// StaticEntry.ExpiresAt "is when the token stops authenticating":
			// at that very instant it no longer does.
			name:       "expires exactly now",
			entries:    []*StaticEntry{expiring("bob", bobToken, testNow)},
			token:      bobToken,
			wantKind:   KindStaticToken,
			wantName:   "bob",
			wantReason: "token expired",
		},
		{
			name:     "expires one nanosecond from now",
			entries:  []*StaticEntry{expiring("bob", bobToken, testNow.Add(time.Nanosecond))},
			token:    bobToken,
			wantUser: "bob", wantKind: KindStaticToken, wantName: "bob",
		},
		{
			name:     "expires in the future",
			entries:  []*StaticEntry{expiring("bob", bobToken, testNow.Add(24*time.Hour))},
			token:    bobToken,
			wantUser: "bob", wantKind: KindStaticToken, wantName: "bob",
		},
		{
			name:       "disabled",
			entries:    []*StaticEntry{disabled("bob", bobToken)},
			token:      bobToken,
			wantKind:   KindStaticToken,
			wantName:   "bob",
			wantReason: "token is disabled",
		},
		{
			name: "disabled and expired says disabled",
			entries: []*StaticEntry{func() *StaticEntry {
				e := disabled("bob", bobToken)
				e.ExpiresAt = testNow.Add(-time.Hour)
				return e
			}()},
			token:      bobToken,
			wantKind:   KindStaticToken,
			wantName:   "bob",
			wantReason: "token is disabled",
		},
		{
			name:     "same token twice: first by name wins",
			entries:  []*StaticEntry{staticEntry("zed", bobToken, "zed"), staticEntry("bob", bobToken, "bob"), staticEntry("mallory", bobToken, "mallory")},
			token:    bobToken,
			wantUser: "bob", wantKind: KindStaticToken, wantName: "bob",
		},
		{
			name:       "same token twice: the winner is disabled, the other does not stand in",
			entries:    []*StaticEntry{staticEntry("zed", bobToken, "zed"), disabled("bob", bobToken)},
			token:      bobToken,
			wantKind:   KindStaticToken,
			wantName:   "bob",
			wantReason: "token is disabled",
		},
		{
			// A static token is looked up before the JWT path, so one that
			// happens to have two dots still works.
			name:     "static token shaped like a JWT",
			entries:  []*StaticEntry{staticEntry("dots", jwtShaped, "dots")},
			token:    jwtShaped,
			wantUser: "dots", wantKind: KindStaticToken, wantName: "dots",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := readyEngine(func(r *Registry) {
				for _, s := range tt.entries {
					r.SetStatic(s.Name, s)
				}
			})
			resp, d, ok := mustAuth(t, e, tt.token)
			if d.Kind != tt.wantKind || d.Name != tt.wantName {
				t.Errorf("decision = %s/%s, want %s/%s", d.Kind, d.Name, tt.wantKind, tt.wantName)
			}
			if tt.wantUser == "" {
				if ok {
					t.Fatalf("authenticated as %q, want refused", resp.User.GetName())
				}
				if !strings.Contains(d.Reason, tt.wantReason) {
					t.Errorf("reason = %q, want it to contain %q", d.Reason, tt.wantReason)
				}
				return
			}
			if !ok {
				t.Fatalf("refused (%q), want %q", d.Reason, tt.wantUser)
			}
			if got := resp.User.GetName(); got != tt.wantUser {
				t.Errorf("user = %q, want %q", got, tt.wantUser)
			}
			if d.Reason != "" {
				t.Errorf("reason = %q on success, want none", d.Reason)
			}
		})
	}
}

func TestStaticTokenUser(t *testing.T) {
	entry := staticEntry("bob", bobToken, "bob")
	e, _ := readyEngine(func(r *Registry) { r.SetStatic("bob", entry) })
	resp, _, ok := mustAuth(t, e, bobToken)
	if !ok {
		t.Fatal("refused")
	}
	u := resp.User
	if u.GetName() != "bob" || u.GetUID() != "bob-uid" || strings.Join(u.GetGroups(), ",") != "developers" ||
		strings.Join(u.GetExtra()["team"], ",") != "caribou" {
		t.Errorf("user = %#v, want the entry's user", u)
	}
	if len(resp.Audiences) != 0 {
		t.Errorf("audiences = %v, want none", resp.Audiences)
	}
}

// TestStaticExpiryFollowsClock checks that expiry is judged by the
// engine's injected clock at request time, not when the entry was set.
func TestStaticExpiryFollowsClock(t *testing.T) {
	var mu sync.Mutex
	now := testNow
	e := NewEngine(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	r := NewRegistry(e)
	entry := staticEntry("bob", bobToken, "bob")
	entry.ExpiresAt = testNow.Add(time.Hour)
	r.SetStatic("bob", entry)
	r.MarkReady()

	for _, step := range []struct {
		at   time.Time
		want bool
	}{
		{testNow, true},
		{testNow.Add(time.Hour - time.Nanosecond), true},
		{testNow.Add(time.Hour), false},
		{testNow.Add(2 * time.Hour), false},
		{testNow.Add(-time.Hour), true},
	} {
		mu.Lock()
		now = step.at
		mu.Unlock()
		if _, d, ok := mustAuth(t, e, bobToken); ok != step.want {
			t.Errorf("at %s: ok = %v (%q), want %v", step.at.Format(time.RFC3339Nano), ok, d.Reason, step.want)
		}
	}
}

func TestEngineNotReady(t *testing.T) {
	e := NewEngine(fixedClock(testNow))
	if e.Ready() {
		t.Fatal("a new engine is ready")
	}
	if _, _, ok := mustAuth(t, e, bobToken); ok {
		t.Fatal("a new engine with nothing registered authenticated a token")
	}

	r := NewRegistry(e)
	r.SetStatic("bob", staticEntry("bob", bobToken, "bob"))
	r.SetJWT("corp", compile(t, "corp", baseSpec(testIssuer), keySet(t, "ec-a"), fixedClock(testNow)))
	jwt := sign(t, "ec-a", baseClaims())
	for _, token := range []string{bobToken, jwt} {
		_, d, ok := mustAuth(t, e, token)
		if ok {
			t.Fatalf("before MarkReady: token authenticated")
		}
		if !strings.Contains(d.Reason, "not ready") || d.Kind != "" || d.Name != "" {
			t.Errorf("before MarkReady: decision = %+v, want a not-ready reason and no object", d)
		}
	}
	if e.Ready() || e.Snapshot().Ready {
		t.Fatal("engine ready before MarkReady")
	}

	r.MarkReady()
	if !e.Ready() {
		t.Fatal("engine not ready after MarkReady")
	}
	for _, token := range []string{bobToken, jwt} {
		if _, d, ok := mustAuth(t, e, token); !ok {
			t.Errorf("after MarkReady: refused (%q)", d.Reason)
		}
	}
	// Readiness survives later changes.
	r.SetStatic("alice", staticEntry("alice", aliceToken, "alice"))
	if _, d, ok := mustAuth(t, e, aliceToken); !ok || !e.Ready() {
		t.Errorf("after a change following MarkReady: ok=%v ready=%v (%q)", ok, e.Ready(), d.Reason)
	}
}

func TestNewEngineNilClock(t *testing.T) {
	e := NewEngine(nil)
	r := NewRegistry(e)
	past := staticEntry("old", bobToken, "old")
	past.ExpiresAt = time.Now().Add(-time.Minute)
	future := staticEntry("new", aliceToken, "new")
	future.ExpiresAt = time.Now().Add(time.Hour)
	r.SetStatic("old", past)
	r.SetStatic("new", future)
	r.MarkReady()
	if _, _, ok := mustAuth(t, e, bobToken); ok {
		t.Error("with the default clock, a token expired a minute ago authenticated")
	}
	if _, d, ok := mustAuth(t, e, aliceToken); !ok {
		t.Errorf("with the default clock, a token expiring in an hour was refused (%q)", d.Reason)
	}
}

func TestRegistryStaticLifecycle(t *testing.T) {
	e, r := readyEngine(nil)
	if r.Has(KindStaticToken, "bob") {
		t.Fatal("Has(bob) before SetStatic")
	}

	r.SetStatic("bob", staticEntry("bob", bobToken, "bob"))
	if !r.Has(KindStaticToken, "bob") {
		t.Error("Has(bob) false after SetStatic")
	}
	if _, _, ok := mustAuth(t, e, bobToken); !ok {
		t.Fatal("refused after SetStatic")
	}

	// A changed Secret: the same object, a new token. The old one stops.
	r.SetStatic("bob", staticEntry("bob", aliceToken, "bob"))
	if _, _, ok := mustAuth(t, e, bobToken); ok {
		t.Error("old token still authenticates after the entry was replaced")
	}
	if resp, _, ok := mustAuth(t, e, aliceToken); !ok || resp.User.GetName() != "bob" {
		t.Error("new token refused after the entry was replaced")
	}

	// A nil entry: seen (for readiness), not served.
	r.SetStatic("bob", nil)
	if !r.Has(KindStaticToken, "bob") {
		t.Error("Has(bob) false after SetStatic(bob, nil): a failed object must count as seen")
	}
	if _, d, ok := mustAuth(t, e, aliceToken); ok || d.Kind != "" {
		t.Errorf("SetStatic(nil) still serves the token: ok=%v decision=%+v", ok, d)
	}
	if s, _ := e.Snapshot().Counts(); s != 0 {
		t.Errorf("snapshot serves %d static tokens, want 0", s)
	}

	r.SetStatic("bob", staticEntry("bob", bobToken, "bob"))
	r.DeleteStatic("bob")
	if r.Has(KindStaticToken, "bob") {
		t.Error("Has(bob) true after DeleteStatic")
	}
	if _, _, ok := mustAuth(t, e, bobToken); ok {
		t.Error("token authenticates after DeleteStatic")
	}
	// Deleting what is not there is harmless.
	r.DeleteStatic("nobody")
	r.DeleteJWT("nobody")
}

func TestRegistryHas(t *testing.T) {
	_, r := readyEngine(func(r *Registry) {
		r.SetStatic("bob", nil)
		r.SetJWT("corp", nil)
	})
	tests := []struct {
		kind, name string
		want       bool
	}{
		{KindStaticToken, "bob", true},
		{KindJWTAuthenticator, "corp", true},
		{KindStaticToken, "corp", false},
		{KindJWTAuthenticator, "bob", false},
		{"Secret", "bob", false},
		{"", "bob", false},
	}
	for _, tt := range tests {
		if got := r.Has(tt.kind, tt.name); got != tt.want {
			t.Errorf("Has(%q, %q) = %v, want %v", tt.kind, tt.name, got, tt.want)
		}
	}
}

// TestDuplicateStaticTokenDeterministic registers the same token under
// several names in every order: the first name always wins, and when it
// goes the next one takes over.
func TestDuplicateStaticTokenDeterministic(t *testing.T) {
	names := []string{"carol", "alice", "bob", "dave"}
	orders := [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {1, 3, 0, 2}, {2, 0, 3, 1}}
	for _, order := range orders {
		e, r := readyEngine(func(r *Registry) {
			for _, i := range order {
				r.SetStatic(names[i], staticEntry(names[i], bobToken, names[i]))
			}
		})
		for _, want := range []string{"alice", "bob", "carol", "dave"} {
			for i := 0; i < 5; i++ {
				resp, d, ok := mustAuth(t, e, bobToken)
				if !ok || d.Name != want || resp.User.GetName() != want {
					t.Fatalf("order %v: got %s (ok=%v), want %s", order, d.Name, ok, want)
				}
			}
			r.DeleteStatic(want)
		}
		if _, _, ok := mustAuth(t, e, bobToken); ok {
			t.Fatalf("order %v: token authenticates after every holder was deleted", order)
		}
	}
}

func TestSnapshotGeneration(t *testing.T) {
	e := NewEngine(fixedClock(testNow))
	if g := e.Snapshot().Generation; g != 0 {
		t.Fatalf("initial generation = %d, want 0", g)
	}
	r := NewRegistry(e)
	var last uint64
	// Before ready nothing is published: loading n objects at start-up
	// builds one snapshot, not n.
	r.SetStatic("a", staticEntry("a", bobToken, "a"))
	r.SetStatic("b", nil)
	if g := e.Snapshot().Generation; g != 0 {
		t.Fatalf("generation before ready = %d, want 0", g)
	}
	for i, step := range []func(){
		func() { r.MarkReady() },
		func() { r.SetStatic("a", staticEntry("a", bobToken, "a")) },
		func() { r.DeleteStatic("a") },
		func() { r.SetJWT("j", nil) },
		func() { r.DeleteJWT("j") },
	} {
		old := e.Snapshot()
		step()
		s := e.Snapshot()
		if s == old {
			t.Fatalf("step %d published no new snapshot", i)
		}
		if s.Generation <= last {
			t.Fatalf("step %d: generation %d not above %d", i, s.Generation, last)
		}
		last = s.Generation
	}
}

// TestEngineConcurrent runs readers against a writer; run with -race.
func TestEngineConcurrent(t *testing.T) {
	e, r := readyEngine(func(r *Registry) { r.SetStatic("bob", staticEntry("bob", bobToken, "bob")) })
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// bob is never removed, so must always authenticate.
				if _, ok, err := e.AuthenticateToken(ctx, bobToken); !ok || err != nil {
					t.Errorf("bob refused during concurrent writes: ok=%v err=%v", ok, err)
					return
				}
				_, _, _ = e.AuthenticateToken(ctx, aliceToken)
			}
		}()
	}
	for i := 0; i < 200; i++ {
		name := fmt.Sprintf("user-%d", i%7)
		r.SetStatic(name, staticEntry(name, aliceToken, name))
		if i%3 == 0 {
			r.DeleteStatic(name)
		}
	}
	close(stop)
	wg.Wait()
}

func TestValidStaticToken(t *testing.T) {
	tests := []struct {
		name    string
		token   string
		wantErr string
	}{
		{name: "generated", token: "k3hD9QmXc0bq2mS5yQkR7Gx0c8iXn6m1tA4uJ1pWlZs"},
		{name: "exactly the minimum length", token: strings.Repeat("a", MinStaticTokenLength)},
		{name: "punctuation is fine", token: "abc-DEF_ghi.jkl~mno+pqr/stu="},
		{name: "empty", token: "", wantErr: "shorter than 16"},
		{name: "one short", token: strings.Repeat("a", MinStaticTokenLength-1), wantErr: "shorter than 16"},
		{name: "inner space", token: "abcdefgh ijklmnop", wantErr: "whitespace"},
		{name: "trailing newline from echo into a Secret", token: "abcdefghijklmnop\n", wantErr: "whitespace"},
		{name: "leading tab", token: "\tabcdefghijklmnop", wantErr: "whitespace"},
		{name: "carriage return", token: "abcdefghijklmnop\r", wantErr: "whitespace"},
		{name: "NUL", token: "abcdefghijklmnop\x00", wantErr: "control"},
		{name: "DEL", token: "abcdefghijklmnop\x7f", wantErr: "control"},
		{name: "sixteen spaces", token: strings.Repeat(" ", 16), wantErr: "whitespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidStaticToken(tt.token)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("ValidStaticToken(%q) = %v, want nil", tt.token, err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("ValidStaticToken(%q) = nil, want an error containing %q", tt.token, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("ValidStaticToken(%q) = %v, want an error containing %q", tt.token, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), tt.token) && tt.token != "" {
				t.Errorf("error %q repeats the token", err)
			}
		})
	}
}

func TestGenerateToken(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok, err := GenerateToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != 43 {
			t.Fatalf("len(%q) = %d, want 43", tok, len(tok))
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			t.Fatalf("%q is not unpadded base64url: %v", tok, err)
		}
		if len(raw) != TokenBytes {
			t.Fatalf("%q decodes to %d bytes, want %d", tok, len(raw), TokenBytes)
		}
		if err := ValidStaticToken(tok); err != nil {
			t.Fatalf("generated token %q is not valid: %v", tok, err)
		}
		if seen[tok] {
			t.Fatalf("GenerateToken returned %q twice", tok)
		}
		seen[tok] = true
	}
}

func TestDigestOf(t *testing.T) {
	if got, want := DigestOf(bobToken), Digest(sha256.Sum256([]byte(bobToken))); got != want {
		t.Errorf("DigestOf = %x, want the SHA-256 %x", got, want)
	}
	if DigestOf(bobToken) == DigestOf(aliceToken) {
		t.Error("different tokens share a digest")
	}
	if DigestOf("") == (Digest{}) {
		t.Error("the empty token digests to zero: a zero Digest in an entry would match it")
	}
}

// TestOneTokenOneIdentity: of two StaticTokens holding one token, the
// oldest is served, whatever the names; the other reports the conflict.
func TestOneTokenOneIdentity(t *testing.T) {
	old := staticEntry("zed", bobToken, "zed")
	old.Created = testNow.Add(-time.Hour)
	newer := staticEntry("aaa", bobToken, "mallory")
	newer.Created = testNow
	e, r := readyEngine(func(r *Registry) {
		r.SetStatic("aaa", newer)
		r.SetStatic("zed", old)
	})
	resp, _, ok := mustAuth(t, e, bobToken)
	if !ok || resp.User.GetName() != "zed" {
		t.Fatalf("the token authenticates as %v (ok %v), want the older StaticToken's zed", resp, ok)
	}
	if by, conflict := r.StaticConflict("aaa"); !conflict || by != "zed" {
		t.Errorf("StaticConflict(aaa) = %q, %v; want zed, true", by, conflict)
	}
	if _, conflict := r.StaticConflict("zed"); conflict {
		t.Error("the served StaticToken reports a conflict")
	}
	// Same age: the first by name.
	newer.Created = old.Created
	r.SetStatic("aaa", newer)
	if resp, _, _ := mustAuth(t, e, bobToken); resp.User.GetName() != "mallory" {
		t.Errorf("same creation time: served %s, want aaa's mallory", resp.User.GetName())
	}
	// The served one goes: the other takes over.
	r.DeleteStatic("aaa")
	if resp, _, _ := mustAuth(t, e, bobToken); resp.User.GetName() != "zed" {
		t.Errorf("after the delete: served %s, want zed", resp.User.GetName())
	}
}

// A StaticToken serves an extra key only with the values its author was
// checked for impersonating (one check a value): a key without values,
// stored before the CRD refused it, is not served, since impersonation
// can never give one and no check covered it.
func TestStaticEntryServesOnlyCheckedExtras(t *testing.T) {
	st := &authnv1alpha1.StaticToken{Spec: authnv1alpha1.StaticTokenSpec{User: authnv1alpha1.UserInfo{
		Username: "bob", Extra: map[string]authnv1alpha1.ExtraValues{"example.com/breakglass": {}, "team": {"caribou"}},
	}}}
	checked := map[string]bool{}
	for _, g := range Impersonations(st.Spec.User) {
		if g.Resource.Resource == "userextras" {
			checked[g.Resource.Subresource] = true
		}
	}
	for k := range NewStaticEntry(st, bobToken).User.GetExtra() {
		if !checked[k] {
			t.Errorf("served extra key %q, which no impersonation check covered", k)
		}
	}
	if got := NewStaticEntry(st, bobToken).User.GetExtra()["team"]; len(got) != 1 || got[0] != "caribou" {
		t.Errorf("team: %v, want [caribou]", got)
	}
}
