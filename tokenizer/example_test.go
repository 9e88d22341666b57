package tokenizer_test

import (
	"encoding/json"
	"fmt"
	"log"
	"path/filepath"
	"strings"

	"github.com/asearcher/asearcher/tokenizer"
)

var qwenFile = filepath.Join("testdata", "qwen3", "tokenizer.json.zst")

func ExampleLoad() {
	tok, err := tokenizer.Load(qwenFile) // a tokenizer.json, a .zst copy, or a model directory
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("Hello world<|im_end|>")
	fmt.Println(ids)
	fmt.Println(tok.Decode(ids))
	end, _ := tok.TokenID("<|im_end|>")
	fmt.Println(end, tok.IsSpecial(end), tok.VocabSize())
	// Output:
	// [9707 1879 151645]
	// Hello world<|im_end|>
	// 151645 true 151669
}

func ExampleTokenizer_ApplyChatTemplate() {
	tok, err := tokenizer.Load(qwenFile)
	if err != nil {
		log.Fatal(err)
	}
	prompt, err := tok.ApplyChatTemplate([]tokenizer.Message{
		{Role: "system", Content: "You are a search agent."},
		{Role: "user", Content: "Who wrote Hamlet?"},
		{Role: "assistant", ToolCalls: []tokenizer.ToolCall{{Name: "search", Arguments: json.RawMessage(`{"query":"Hamlet"}`)}}},
		{Role: "tool", Content: "Hamlet is a play by William Shakespeare."},
	}, tokenizer.ChatOptions{Format: tokenizer.ChatQwen3, AddGenerationPrompt: true, DisableThinking: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(prompt)
	// Output:
	// <|im_start|>system
	// You are a search agent.<|im_end|>
	// <|im_start|>user
	// Who wrote Hamlet?<|im_end|>
	// <|im_start|>assistant
	// <tool_call>
	// {"name": "search", "arguments": {"query": "Hamlet"}}
	// </tool_call><|im_end|>
	// <|im_start|>user
	// <tool_response>
	// Hamlet is a play by William Shakespeare.
	// </tool_response><|im_end|>
	// <|im_start|>assistant
	// <think>
	//
	// </think>
	//
}

func ExampleTokenizer_NewStreamDecoder() {
	tok, err := tokenizer.Load(qwenFile)
	if err != nil {
		log.Fatal(err)
	}
	// A sampler feeds ids one at a time and checks stop strings on the text
	// so far; a character split across tokens appears only once complete.
	ids := tok.Encode("答案是 42 </answer> and more")
	d := tok.NewStreamDecoder()
	var text strings.Builder
	for _, id := range ids {
		text.WriteString(d.Add(id))
		if strings.Contains(text.String(), "</answer>") {
			break
		}
	}
	fmt.Println(text.String())
	// Output:
	// 答案是 42 </answer>
}

func ExampleTrain() {
	corpus := []string{
		"the search agent reads the page and answers the question",
		"the agent searches again when the page does not answer the question",
	}
	tok, err := tokenizer.Train(corpus, tokenizer.TrainOptions{
		VocabSize:     300,
		SpecialTokens: tokenizer.ChatMLSpecialTokens(),
		AddedTokens:   tokenizer.QwenAddedTokens(),
	})
	if err != nil {
		log.Fatal(err)
	}
	// tok.Save(dir) writes dir/tokenizer.json for HF tokenizers and Load.
	ids := tok.Encode("<|im_start|>the question<|im_end|>")
	fmt.Println(len(ids), tok.Decode(ids))
	// Output:
	// 4 <|im_start|>the question<|im_end|>
}
