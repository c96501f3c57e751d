package certs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEnsureCreatesReusesAndRenews(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	hosts := []string{"127.0.0.1", "localhost"}
	ca1, err := Ensure(dir, hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	cert1, _ := os.ReadFile(filepath.Join(dir, CertFile))
	if b := ReadDir(dir); !servingValid(&b, hosts, now) {
		t.Fatal("fresh serving certificate does not verify against the CA")
	}
	ca2, err := Ensure(dir, hosts, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert2, _ := os.ReadFile(filepath.Join(dir, CertFile))
	if !bytes.Equal(ca1, ca2) || !bytes.Equal(cert1, cert2) {
		t.Fatal("a valid CA and certificate were not reused")
	}
	// Near the serving certificate's end it is renewed under the same CA.
	later := now.Add(ServingLifetime - RenewBefore + time.Hour)
	ca3, err := Ensure(dir, hosts, later)
	if err != nil {
		t.Fatal(err)
	}
	cert3, _ := os.ReadFile(filepath.Join(dir, CertFile))
	if !bytes.Equal(ca1, ca3) || bytes.Equal(cert1, cert3) {
		t.Fatal("the serving certificate was not renewed under the kept CA")
	}
	// A new host name needs a new certificate.
	if b := ReadDir(dir); !bytes.Equal(b.CA, ca3) || servingValid(&b, []string{"portcullis.example"}, later) {
		t.Fatal("certificate verified for a host it was not issued for")
	}
}

func TestRenewForce(t *testing.T) {
	var b Bundle
	now := time.Now()
	if changed, err := b.Renew([]string{"localhost"}, now, false); err != nil || !changed {
		t.Fatalf("first renew: %v %v", changed, err)
	}
	ca, cert := b.CA, b.Cert
	if changed, _ := b.Renew([]string{"localhost"}, now, false); changed {
		t.Fatal("a valid bundle was renewed")
	}
	if changed, _ := b.Renew([]string{"localhost"}, now, true); !changed || !bytes.Equal(ca, b.CA) || bytes.Equal(cert, b.Cert) {
		t.Fatal("a forced renewal must issue a new serving certificate under the same CA")
	}
}

// A client certificate is valid only for its common name, under its CA,
// and until RenewBefore of its end.
func TestClientValid(t *testing.T) {
	now := time.Now()
	var b, other Bundle
	for _, x := range []*Bundle{&b, &other} {
		if _, err := x.Renew([]string{"h"}, now, false); err != nil {
			t.Fatal(err)
		}
	}
	cert, key, err := IssueClient(b.CA, b.CAKey, "api", now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ca   []byte
		key  []byte
		cn   string
		at   time.Time
		want bool
	}{
		{"fresh", b.CA, key, "api", now, true},
		{"another common name", b.CA, key, "other", now, false},
		{"another CA", other.CA, key, "api", now, false},
		{"another key", b.CA, other.Key, "api", now, false},
		{"near its end", b.CA, key, "api", now.Add(ServingLifetime - RenewBefore + time.Hour), false},
	} {
		if got := ClientValid(tc.ca, cert, tc.key, tc.cn, tc.at); got != tc.want {
			t.Errorf("%s: ClientValid = %v, want %v", tc.name, got, tc.want)
		}
	}
	// A serving certificate is no client certificate.
	if ClientValid(b.CA, b.Cert, b.Key, "portcullis-webhook", now) {
		t.Error("a serving certificate counts as a client certificate")
	}
}
