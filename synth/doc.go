// Package synth is the QA synthesis agent: it starts from a seed page of a
// corpus (or the web), asks a model for a simple question about it, and then
// makes the question harder turn by turn, either by injecting a fact from a
// linked page (the bridge entity disappears from the question, the answer
// stays) or by fuzzing a detail. Every candidate is verified before it
// replaces the current question: quality (well formed, one question,
// answerable from the collected statements, the answer is right),
// difficulty (a solver model answers it several times without tools; the
// fraction judged correct is the difficulty) and uniqueness (no wrong
// solver answer is also right according to the statements). Versions that
// pass and are hard enough are written, one JSON line each, with their
// evidence and history, in a form dataset.Load reads as a QA set.
//
// A run is resumable: the QA file and a journal of finished seeds are
// appended to, one seed at a time, and a restarted run drops any records
// of unfinished seeds and skips the finished ones.
package synth
