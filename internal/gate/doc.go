// Package gate holds the two runnables every phase's controllers share:
//
//   - Leader tells reconcilers whether this replica may write to the API
//     (status, generated objects) and, once elected, replays every object so
//     the new leader writes the status that followers only computed.
//   - Ready marks a phase's snapshot ready once every object that existed
//     when the caches synced has been compiled or deleted, so a starting
//     replica never answers from a partial snapshot (Gatekeeper's readiness
//     tracker, in small) and one deleted while loading does not hold it back.
package gate
