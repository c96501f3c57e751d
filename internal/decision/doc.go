// Package decision records every webhook decision once: one structured log
// line and one Prometheus observation, with the same fields in every phase
// so the four phases of one request can be read side by side.
package decision
