package admission

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
)

// This file checks what a policy leaves against the kind's schema. The
// API server decodes the object the webhook's patch makes into its Go type
// (webhook/mutating/dispatcher.go) and fails the whole request when it
// cannot, an internal error that no failure policy covers: one policy's
// wrongly typed value (a string where the schema has a number) would
// reject the request, the other policies' changes with it. Checked after
// each policy, such a value is that policy's error, under its own failure
// policy, and rolled back, as the API server's MutatingAdmissionPolicy
// makes an apply configuration that does not fit the schema an error of
// its policy.

// fieldNotDeclared is structured-merge-diff's message for a field the
// schema does not have. The API server's decoder drops such a field
// rather than fail, so it is no error of the policy here.
const fieldNotDeclared = "field not declared in schema"

// schemaCheck checks, for one request, that the object as each policy
// leaves it fits the kind's schema (the TypeConverters applyConfiguration
// merges under). It only judges what a policy changed: a request whose
// object as sent does not fit (a newer API server's fields, a schema
// that does not know the kind) is left as it is, as before the check.
type schemaCheck struct {
	looked bool
	tc     managedfields.TypeConverter // nil: the kind's schema is unknown
	// fits says the object was seen to fit: every later object before a
	// policy then fits too, as a policy whose result does not is rolled
	// back.
	fits bool
	// off says the schema cannot judge this request's object.
	off bool
}

// check returns an error naming the fields that do not fit the schema in
// r's object as log, the policy's writes, left it; nil when they fit or
// the schema cannot tell. The object is as it was when check returns.
func (c *schemaCheck) check(r *Request, log undoLog) error {
	if c.off {
		return nil
	}
	if !c.looked {
		c.looked = true
		if r.types != nil {
			c.tc = r.types.GetTypeConverter(schema.GroupVersionKind(r.req.Kind))
		}
	}
	if c.tc == nil || r.object == nil {
		c.off = true
		return nil
	}
	err := c.misfit(r)
	if err == nil {
		c.fits = true
		return nil
	}
	if !c.fits {
		// Is it the policy's, or was the object unfit before it?
		log.undo()
		before := c.misfit(r)
		log.redo()
		if before != nil {
			c.off = true
			return nil
		}
		c.fits = true
	}
	return fmt.Errorf("leaves the object unfit for the %s schema, so the API server could not decode it: %w", r.req.Kind.Kind, err)
}

// misfit is what of r's object its schema refuses, fields it does not
// declare aside; nil when it fits. structured-merge-diff stops reading an
// object's members at one it does not declare, so a wrong value beside
// such a field may go unseen: the check finds less, never more, than the
// API server's decoder.
func (c *schemaCheck) misfit(r *Request) error {
	// Duplicates in a keyed list are for validation to refuse, as the API
	// server's field manager allows them in objects it reads.
	_, err := c.tc.ObjectToTyped(r.object, typed.AllowDuplicates)
	var verrs typed.ValidationErrors
	if err == nil || !errors.As(err, &verrs) {
		return err
	}
	var msgs []string
	for _, e := range verrs {
		if e.ErrorMessage != fieldNotDeclared {
			msgs = append(msgs, e.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}
