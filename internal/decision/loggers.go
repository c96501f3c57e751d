package decision

import (
	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	crzap "sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// Loggers builds, from the --zap-* flags, the operator's logger and the
// decision log. Both write to the same sink with the same encoder and
// level, but only the operator's logger is sampled: in production mode
// controller-runtime keeps the first 100 entries with the same message
// each second and one in 100 after that, which protects the log from a
// storm of reconcile errors, but every decision line has the message
// "decision", so above 100 decisions a second it would drop 99 of every
// 100. The decision log is a record of what was decided (DESIGN.md: one
// line per decision), so it is built from the core beneath the sampler.
// The operator (cmd/portcullis) and the handler benchmarks use it.
func Loggers(o *crzap.Options) (operator, decisions logr.Logger) {
	var unsampled zapcore.Core
	// controller-runtime applies our options before the sampler it adds,
	// so this sees the core the sampler wraps.
	keep := crzap.RawZapOpts(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		unsampled = c
		return c
	}))
	raw := crzap.NewRaw(crzap.UseFlagOptions(o), keep)
	dec := raw.WithOptions(zap.WrapCore(func(zapcore.Core) zapcore.Core { return unsampled }))
	return zapr.NewLogger(raw), zapr.NewLogger(dec).WithName("decision")
}
