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
	if !servingValid(dir, ca1, hosts, now) {
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
	if servingValid(dir, ca3, []string{"portcullis.example"}, later) {
		t.Fatal("certificate verified for a host it was not issued for")
	}
}
