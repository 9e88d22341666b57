// Package tinker is the Tinker API's wire format: the JSON bodies of
// create_model, forward(_backward), optim_step, asample and
// retrieve_future as the official Python SDK sends and reads them. The
// Tinker sampling backend (llm), the Tinker trainer client (trainer) and
// the Tinker-compatible server (engine/serve) share these types, so the
// three cannot drift apart.
package tinker
