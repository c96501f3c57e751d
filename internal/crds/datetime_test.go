package crds

import (
	"sort"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
)

// Every date-time a user writes in a spec is refused by the schema unless
// Go reads it: the schema's own date-time reads a lower-case t and z and
// a space, which metav1.Time does not, and an object stored with one
// could not be decoded by the operator's caches, which would stop seeing
// every later change of its kind. Each such field is validated as the
// API server validates it (apiextensions-apiserver's schema validator).
func TestSpecDateTimesAreWhatGoReads(t *testing.T) {
	all, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, crd := range all {
		if len(Foreign([]*apiextensionsv1.CustomResourceDefinition{crd})) > 0 {
			continue
		}
		for _, v := range crd.Spec.Versions {
			spec, ok := v.Schema.OpenAPIV3Schema.Properties["spec"]
			if !ok {
				continue
			}
			walkDateTimes("spec", spec, func(path string, s apiextensionsv1.JSONSchemaProps) {
				found = append(found, crd.Spec.Names.Kind+"."+path)
				var internal apiextensions.JSONSchemaProps
				if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(&s, &internal, nil); err != nil {
					t.Fatal(err)
				}
				val, _, err := validation.NewSchemaValidator(&internal)
				if err != nil {
					t.Fatal(err)
				}
				for in, want := range map[string]bool{
					"2030-01-01T00:00:00Z": true, "2030-01-01T00:00:00.5+01:00": true,
					"2030-01-01t00:00:00z": false, "2030-01-01T00:00:00z": false, "2030-01-01 00:00:00Z": false,
				} {
					if got := len(validation.ValidateCustomResource(nil, in, val)) == 0; got != want {
						t.Errorf("%s %s: %q accepted %v, want %v", crd.Spec.Names.Kind, path, in, got, want)
					}
				}
			})
		}
	}
	sort.Strings(found)
	if len(found) < 2 {
		t.Fatalf("date-times in specs: %v, want at least StaticToken's and PolicyException's expiresAt", found)
	}
}

// walkDateTimes calls f for each string of format date-time under s.
func walkDateTimes(path string, s apiextensionsv1.JSONSchemaProps, f func(string, apiextensionsv1.JSONSchemaProps)) {
	if s.Type == "string" && s.Format == "date-time" {
		f(path, s)
	}
	for name, p := range s.Properties {
		walkDateTimes(path+"."+name, p, f)
	}
	if s.Items != nil && s.Items.Schema != nil {
		walkDateTimes(path+"[*]", *s.Items.Schema, f)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		walkDateTimes(path+"[*]", *s.AdditionalProperties.Schema, f)
	}
}
