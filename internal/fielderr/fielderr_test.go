package fielderr

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestUnder(t *testing.T) {
	rules := field.NewPath("spec", "rules").Index(1)
	errs := field.ErrorList{field.Invalid(rules.Child("verbs").Index(0), "GET", "lower case"), field.Required(rules.Child("apiGroups"), "")}
	for path, want := range map[*field.Path]bool{
		rules.Child("verbs"):                     true,
		rules.Child("apiGroups"):                 true,
		rules.Child("resources"):                 false,
		rules:                                    true,
		rules.Child("verbsAndMore"):              false,
		field.NewPath("spec", "rules").Index(10): false,
	} {
		if got := Under(errs, path); got != want {
			t.Errorf("Under(%s) = %v, want %v", path, got, want)
		}
	}
}
