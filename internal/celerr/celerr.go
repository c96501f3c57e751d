// Package celerr maps CEL compilation errors to field errors, the way the
// API server reports CEL in its own objects (ValidatingAdmissionPolicy
// expressions, webhook matchConditions), so every Portcullis kind names the
// field the same way.
package celerr

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"
	apiservercel "k8s.io/apiserver/pkg/cel"
)

// FieldError maps err, from compiling expression at path, to a field error.
func FieldError(path *field.Path, expression string, err error) *field.Error {
	var celErr *apiservercel.Error
	if errors.As(err, &celErr) {
		switch celErr.Type {
		case apiservercel.ErrorTypeRequired:
			return field.Required(path, celErr.Detail)
		case apiservercel.ErrorTypeInvalid:
			return field.Invalid(path, expression, celErr.Detail)
		default:
			return field.InternalError(path, celErr)
		}
	}
	return field.InternalError(path, fmt.Errorf("compiling CEL: %w", err))
}
