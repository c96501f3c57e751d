package admission

// Engines is the admission pair as the webhooks serve it: a mutation and
// a validation engine reading the same namespaces and parameter objects,
// each fed by its registry, and one PolicyException registry publishing
// to both. The operator, `portcullis test`, `portcullis explain` and the
// background audit build it here, so that they cannot wire it apart.
type Engines struct {
	Mutation    *MutationEngine
	Validation  *ValidationEngine
	Mutations   *MutationRegistry
	Validations *ValidationRegistry
	Exceptions  *ExceptionRegistry
}

// NewEngines returns the pair, not ready (see MarkReady); params may be
// nil when no policy has a paramKind.
func NewEngines(namespaces NamespaceLister, params ParamSource) *Engines {
	m, v := NewMutationEngine(namespaces), NewValidationEngine(namespaces)
	if params != nil {
		m.UseParams(params)
		v.UseParams(params)
	}
	return &Engines{
		Mutation: m, Validation: v,
		Mutations: NewMutationRegistry(m), Validations: NewValidationRegistry(v),
		Exceptions: NewExceptionRegistry(m, v),
	}
}

// MarkReady marks every registry ready, exceptions first: for callers
// that have set every policy they will ever serve (offline tools). The
// operator marks each when its controller has seen every object.
func (e *Engines) MarkReady() {
	e.Exceptions.MarkReady()
	e.Mutations.MarkReady()
	e.Validations.MarkReady()
}
