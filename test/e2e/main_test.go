package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/portcullis-io/portcullis/internal/devenv"
)

// env is the control plane and operator shared by this package's tests.
var env *devenv.Env

// tokenCacheTTL is the API server's token cache in these tests: short, so a
// change is visible to the next request within seconds, as DESIGN.md's
// safety rules say tests should set it.
const tokenCacheTTL = time.Second

// authzCacheTTL is the API server's cache of authorization answers in these
// tests, allowed and denied alike.
const authzCacheTTL = time.Second

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	var err error
	env, err = devenv.Start(ctx, devenv.Options{TokenCacheTTL: tokenCacheTTL, AuthorizationCacheTTL: authzCacheTTL})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane and operator:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping:", err)
	}
	os.Exit(code)
}
