// Package fielderr reads field.ErrorLists.
package fielderr

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Under reports whether any of errs is at path or under it (an index or
// child of it).
func Under(errs field.ErrorList, path *field.Path) bool {
	p := path.String()
	for _, e := range errs {
		if e.Field == p || strings.HasPrefix(e.Field, p+"[") || strings.HasPrefix(e.Field, p+".") {
			return true
		}
	}
	return false
}
