package tokenizer

// TokenBytes is the raw bytes token id stands for (nil for an unknown id):
// unlike Decode, a token that holds part of a multi-byte character keeps
// its bytes instead of becoming U+FFFD. OpenAI's logprobs.bytes needs them.
func (t *Tokenizer) TokenBytes(id int) []byte {
	return append([]byte(nil), t.tokenBytes(id)...)
}
