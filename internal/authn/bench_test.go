package authn

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
)

const benchStaticTokens = 10_000

func benchStaticName(i int) string { return fmt.Sprintf("token-%05d", i) }
func benchStaticToken(i int) string {
	return fmt.Sprintf("static-%05d-0123456789abcdefghijklmnopqrstuv", i)
}

// staticRegistry10k is a ready engine serving benchStaticTokens static
// tokens. It is filled behind the registry's back and published once:
// calling SetStatic 10,000 times republishes (copies and sorts) the whole
// set on every call, which is quadratic and takes tens of seconds (see
// BenchmarkSetStaticAt10k).
var staticRegistry10k = sync.OnceValues(func() (*Engine, *Registry) {
	e := NewEngine(fixedClock(testNow))
	r := NewRegistry(e)
	// Before MarkReady nothing is published: each Set is O(1).
	for i := 0; i < benchStaticTokens; i++ {
		name := benchStaticName(i)
		r.SetStatic(name, staticEntry(name, benchStaticToken(i), name))
	}
	r.MarkReady()
	return e, r
})

func BenchmarkStaticTokenLookup10k(b *testing.B) {
	e, _ := staticRegistry10k()
	if s, _ := e.Snapshot().Counts(); s != benchStaticTokens {
		b.Fatalf("snapshot serves %d tokens, want %d", s, benchStaticTokens)
	}
	ctx := context.Background()
	for _, bm := range []struct {
		name   string
		token  string
		wantOK bool
	}{
		{"known", benchStaticToken(benchStaticTokens / 2), true},
		{"unknown", "static-unknown-0123456789abcdefghijklmnopqrstuv", false},
	} {
		b.Run(bm.name, func(b *testing.B) {
			if _, ok, _ := e.AuthenticateToken(ctx, bm.token); ok != bm.wantOK {
				b.Fatalf("ok = %v, want %v", ok, bm.wantOK)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, _, _ = e.AuthenticateToken(ctx, bm.token)
			}
		})
	}
}

// BenchmarkSetStaticAt10k is the cost of one change (a Secret rotated) when
// 10,000 StaticTokens exist: each SetStatic republishes the whole snapshot.
func BenchmarkSetStaticAt10k(b *testing.B) {
	_, r := staticRegistry10k()
	name := benchStaticName(benchStaticTokens / 2)
	entry := staticEntry(name, benchStaticToken(benchStaticTokens/2), name)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.SetStatic(name, entry)
	}
}

// benchTokens signs n distinct tokens (each with its own jti) with kid,
// on every CPU: RSA signing costs far more than verifying.
func benchTokens(b *testing.B, kid string, n int) []string {
	b.Helper()
	k := key(kid)
	payloads := make([]string, n)
	for i := range payloads {
		payloads[i] = baseClaims().with(claimSet{"jti": fmt.Sprintf("bench-%d", i)}).json(b)
	}
	out := make([]string, n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n && errs[w] == nil; i += len(errs) {
				out[i], errs[w] = signCompact(k.priv, k.alg, k.kid, payloads[i])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkJWTVerify measures Engine.AuthenticateToken for a JWT: routing
// by iss, signature, standard claims and claim mappings. "cold" verifies a
// token never seen before on each iteration (signed outside the timer);
// "cached" verifies one token again and again. The engine keeps no cache
// of its own (the API server caches TokenReview answers), so the two
// should not differ.
func BenchmarkJWTVerify(b *testing.B) {
	for _, kid := range []string{"rsa-a", "ec-a"} {
		alg := string(key(kid).alg)
		e, _ := readyEngine(func(r *Registry) {
			r.SetJWT("corp", compile(b, "corp", baseSpec(testIssuer), keySet(b, kid), fixedClock(testNow)))
		})
		ctx := context.Background()
		b.Run(alg+"/cold", func(b *testing.B) {
			tokens := benchTokens(b, kid, b.N)
			if _, ok, _ := e.AuthenticateToken(ctx, sign(b, kid, baseClaims())); !ok {
				b.Fatal("token refused")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, ok, _ := e.AuthenticateToken(ctx, tokens[i]); !ok {
					b.Fatal("token refused")
				}
			}
		})
		b.Run(alg+"/cached", func(b *testing.B) {
			token := sign(b, kid, baseClaims().with(claimSet{"jti": "bench-cached"}))
			if _, ok, _ := e.AuthenticateToken(ctx, token); !ok {
				b.Fatal("token refused")
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, ok, _ := e.AuthenticateToken(ctx, token); !ok {
					b.Fatal("token refused")
				}
			}
		})
	}
}
