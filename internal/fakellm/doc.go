// Package fakellm is a scripted, in-process model server for tests. One
// Server speaks both SGLang's native API (/generate, /abort_request,
// /pause_generation, /continue_generation, /update_weights_from_disk,
// /get_model_info, /health) and the OpenAI-compatible API (/v1/models,
// /v1/completions, /v1/chat/completions) in the shapes those engines
// document, on a random 127.0.0.1 port.
//
// A test says what the "model" generates; the server then behaves like an
// engine decoding those tokens: it applies max_new_tokens / max_tokens,
// stop strings, stop token ids and EOS, reports a logprob per token and the
// current weight version, and can be slowed down, paused, aborted or made
// to fail.
//
//	srv := fakellm.New(fakellm.Options{})
//	defer srv.Close()
//	srv.Enqueue(fakellm.Reply{Text: "<search>capital of France</search> ignored"})
//	sampler, _ := llm.NewSGLang(llm.SGLangConfig{BaseURL: srv.URL})
//	resp, _ := sampler.Sample(ctx, &llm.Request{InputIDs: ids, Params: llm.Params{Stop: []string{"</search>"}}})
//	// resp.Text == "<search>capital of France</search>", resp.Finish == llm.FinishStop
//
// Replies come from Options.Handler when set, otherwise from the queue
// filled by Enqueue (first in, first out). With neither, a call gets HTTP
// 500 "fakellm: no scripted reply", so a test that forgets to script a
// call fails loudly.
//
// Tokens: text is turned into ids by Options.Tokenizer (ByteTokenizer by
// default: one token per byte, id = byte value, EOS = 256). Pass the real
// tokenizer to get ids that match a model's vocabulary.
//
// Interruption: with Reply.TokenDelay > 0 generation takes time, and
// Pause (or POST /pause_generation) ends every running request at once with
// finish_reason {"type":"abort"} and the tokens produced so far. New
// requests wait until Continue. A request that resubmits prompt + partial
// output under the same rid (AReaL's resume loop) continues the same reply
// where it stopped, so a client can be checked for lost or duplicated
// tokens. Reply.AbortAfter scripts such an interruption at an exact token
// without any timing. SetVersion (or POST /update_weights_from_disk with
// "weight_version") changes the weight version reported in
// meta_info.weight_version; a segment reports the version it started with.
//
// Stop strings: Options.StopStyle imitates how a server family treats a
// matched stop string on the OpenAI endpoints: kept on request and named in
// stop_reason (vLLM, the default), trimmed and named in stop_reason or
// matched_stop (SGLang), trimmed and unreported (the OpenAI API), or kept and
// unreported.
//
// Calls records every generation request (path, rid, prompt ids and text,
// parsed sampling fields, raw body) so tests can assert what a client sent.
package fakellm
