// Package agent is the search agent runtime shared by ask, eval, synth and
// train: the prompt registry, the action-tag parser, the agents (ASearcher
// with search and access, search-only, Search-R1 style, a reasoning-model
// variant on the chat template, and a minimal one for tiny models), and the
// Trajectory they record: every model call's tokens, logprobs and weight
// versions, every tool call, and the training sequences built from them.
//
// A Workflow turns a Task (a question) and an Env (sampler, tokenizer,
// tools, limits) into a Trajectory. Custom agents implement Workflow,
// usually on top of a Session, which keeps the context as token ids and
// records everything the agent does.
package agent
