package controlplane

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/util/keyutil"

	"github.com/portcullis-io/portcullis/internal/certs"
)

// fakeAssets makes a directory with executable stand-ins for the binaries.
func fakeAssets(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestAssetsDir(t *testing.T) {
	full := fakeAssets(t, "kube-apiserver", "kube-controller-manager", "etcd", "kubectl")
	partial := fakeAssets(t, "kube-apiserver")
	tests := []struct {
		name, portcullis, kubebuilder string
		want, wantErr                 string
	}{
		{name: "none", wantErr: "run `make control-plane`"},
		{name: "PORTCULLIS_ASSETS first", portcullis: full, kubebuilder: partial, want: full},
		{name: "KUBEBUILDER_ASSETS", kubebuilder: full, want: full},
		{name: "missing binaries", portcullis: partial, wantErr: "no executable kube-controller-manager, etcd, kubectl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvAssets, tc.portcullis)
			t.Setenv(EnvKubebuilderAssets, tc.kubebuilder)
			got, err := AssetsDir()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("AssetsDir() = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseExtraFlags(t *testing.T) {
	got, err := parseExtraFlags([]string{"--audit-log-path=/tmp/a.log", "--runtime-config=a/v1=true", "--runtime-config=b/v1=false", "--profiling"})
	if err != nil {
		t.Fatal(err)
	}
	want := []flag{
		{name: "audit-log-path", value: "/tmp/a.log", hasValue: true},
		{name: "runtime-config", value: "a/v1=true", hasValue: true},
		{name: "runtime-config", value: "b/v1=false", hasValue: true},
		{name: "profiling"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("flag %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	for arg, wantErr := range map[string]string{
		"audit-log-path=/x":                  "want --name=value",
		"-v=4":                               "want --name=value",
		"---v=4":                             "want --name=value",
		"--":                                 "want --name=value",
		"--=x":                               "want --name=value",
		"--authorization-mode=RBAC":          "refuses it with --authorization-config",
		"--authorization-config=/x":          "Config.Wiring",
		"--secure-port=6443":                 "free loopback port",
		"--etcd-servers=http://x":            "its own etcd",
		"--service-account-issuer=https://x": "stable",
	} {
		if _, err := parseExtraFlags([]string{arg}); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: err = %v, want it to contain %q", arg, err, wantErr)
		}
	}
}

func TestEnsureCerts(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := ensureCerts(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, name := range []string{servingCAFile, servingCAKeyFile, servingCertFile, servingKeyFile, saPublicFile, saKeyFile} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != certFileMode {
			t.Errorf("%s: mode %v", name, st.Mode().Perm())
		}
	}
	if !bytes.Equal(ca, read(servingCAFile)) {
		t.Fatal("returned CA is not the persisted one")
	}

	// The serving certificate verifies against the CA for the loopback
	// address the API server listens on.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := parseCertificatePEM(read(servingCertFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, CurrentTime: now}); err != nil {
			t.Errorf("serving certificate for %s: %v", host, err)
		}
	}
	if got := cert.NotAfter.Sub(now); got < certs.ServingLifetime-time.Minute {
		t.Errorf("serving certificate valid for %s, want %s", got, certs.ServingLifetime)
	}
	// The signing key pair is usable as kube-apiserver reads it.
	if _, err := keyutil.PrivateKeyFromFile(filepath.Join(dir, saKeyFile)); err != nil {
		t.Error(err)
	}
	if _, err := keyutil.PublicKeysFromFile(filepath.Join(dir, saPublicFile)); err != nil {
		t.Error(err)
	}

	// A second start reuses everything.
	saKey := read(saKeyFile)
	again, err := ensureCerts(dir, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, ca) {
		t.Error("a valid serving CA was replaced")
	}

	// Near expiry the serving certificate is renewed, under the kept CA
	// (valid far longer); the signing key is kept so that service-account
	// tokens stay valid.
	servingBefore := read(servingCertFile)
	later := now.Add(certs.ServingLifetime - certs.RenewBefore + time.Hour)
	renewed, err := ensureCerts(dir, later)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(renewed, ca) {
		t.Error("the serving CA was replaced although it is far from its end")
	}
	if bytes.Equal(read(servingCertFile), servingBefore) {
		t.Error("a serving certificate about to expire was kept")
	}
	if cert, err = parseCertificatePEM(read(servingCertFile)); err != nil {
		t.Fatal(err)
	} else if _, err := cert.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: pool, CurrentTime: later}); err != nil {
		t.Errorf("renewed serving certificate: %v", err)
	}
	if !bytes.Equal(read(saKeyFile), saKey) {
		t.Error("the service-account signing key changed on renewal")
	}

	// A broken set (no CA, as after a crash mid-write) is regenerated.
	if err := os.Remove(filepath.Join(dir, servingCAFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := ensureCerts(dir, now); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, servingCAFile)); err != nil {
		t.Error(err)
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	if ports[0] == ports[1] || ports[1] == ports[2] || ports[0] == ports[2] || ports[0] == 0 {
		t.Fatalf("ports = %v", ports)
	}
}

func TestStartRejectsBadConfigBeforeStartingAnything(t *testing.T) {
	assets := fakeAssets(t, "kube-apiserver", "etcd", "kubectl")
	state := filepath.Join(t.TempDir(), "state")
	for name, cfg := range map[string]Config{
		"reserved flag": {AssetsDir: assets, StateDir: state, Wiring: wiringFor("https://127.0.0.1:1"), ExtraAPIServerFlags: []string{"--authorization-mode=RBAC"}},
		"bad wiring":    {AssetsDir: assets, StateDir: state, Wiring: wiringFor("http://127.0.0.1:1")},
		"no assets":     {AssetsDir: t.TempDir(), StateDir: state, Wiring: wiringFor("https://127.0.0.1:1")},
	} {
		if _, err := Start(t.Context(), cfg); err == nil {
			t.Errorf("%s: Start succeeded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(state, etcdSubdir)); !os.IsNotExist(err) {
		t.Errorf("state created for an invalid config (stat: %v)", err)
	}
}
