package app

import "testing"

func TestParseRuntimeConfig(t *testing.T) {
	rc, err := ParseRuntimeConfig(nil)
	if err != nil || !rc.Enabled("authentication.portcullis.io", "v1alpha1") {
		t.Fatalf("default: %v %v", rc, err)
	}
	rc, err = ParseRuntimeConfig(map[string]string{"authentication.portcullis.io/v1alpha1": "false"})
	if err != nil || rc.Enabled("authentication.portcullis.io", "v1alpha1") {
		t.Fatalf("off: %v %v", rc, err)
	}
	for _, bad := range []map[string]string{
		{"authentication.portcullis.io/v9": "false"},
		{"authentication.portcullis.io/v1alpha1": "nope"},
	} {
		if _, err := ParseRuntimeConfig(bad); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
