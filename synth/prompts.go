package synth

import (
	"fmt"

	"github.com/asearcher/asearcher/agent"
)

// Prompt names in the agent prompt registry. Users can replace any of them
// (agent.Prompts.Register) before building a Synthesizer; the placeholders
// each one is rendered with are listed in docs/synth.md.
const (
	PromptBaseQA   = "synth/base-qa"
	PromptAction   = "synth/action"
	PromptInject   = "synth/inject"
	PromptCovered  = "synth/covered"
	PromptFuzz     = "synth/fuzz"
	PromptQuality  = "synth/quality"
	PromptSolve    = "synth/solve"
	PromptUnique   = "synth/unique"
	jsonOnlyFooter = "\nReply with the JSON object only, no other text."
)

// RegisterPrompts adds the synthesis prompts to r (replacing same-named
// ones, so call it before registering your own overrides).
func RegisterPrompts(r *agent.Prompts) error {
	for _, p := range builtinPrompts() {
		if err := r.Register(p); err != nil {
			return fmt.Errorf("synth prompts: %w", err)
		}
	}
	return nil
}

func builtinPrompts() []agent.Prompt {
	return []agent.Prompt{
		{
			Name:        PromptBaseQA,
			Description: "synthesis: a simple question with a unique short answer from the seed page",
			Chat:        true,
			Text: "## Task: base question\n" +
				"You write quiz questions from source pages. Read the page and write ONE simple question whose answer is a short " +
				"name, number, date or phrase stated in the page, with exactly one correct answer. Give the sentence of the page " +
				"that supports the answer as a self-contained declarative statement.\n\n" +
				"Page title: {title}\nPage text:\n{text}\n\n" +
				`Reply format: {"question": "...", "answer": "...", "statement": "..."}` + jsonOnlyFooter,
		},
		{
			Name:        PromptAction,
			Description: "synthesis: pick the next edit (inject, fuzz or exit)",
			Chat:        true,
			Text: "## Task: choose an action\n" +
				"You are making a quiz question harder one edit at a time. The answer never changes.\n\n" +
				"Current question: {question}\nAnswer: {answer}\nWhat is known (statements):\n{statements}\n\n" +
				"Possible actions:\n{actions}\n" +
				"Linked entities you may inject (use the exact name):\n{entities}\n\n" +
				`Reply format: {"action": "inject|fuzz|exit", "entity": "exact name when injecting, else empty", "reason": "one sentence"}` + jsonOnlyFooter,
		},
		{
			Name:        PromptInject,
			Description: "synthesis: merge a fact from a linked page so the bridge entity disappears",
			Chat:        true,
			Text: "## Task: inject a fact\n" +
				"Current question: {question}\nAnswer: {answer}\nWhat is known (statements):\n{statements}\n\n" +
				"Linked page: {title}\n{text}\n\n" +
				"Pick one fact of the linked page about something the current question names (the bridge: a person, place, work, " +
				"date or number). Rewrite the question so the bridge is no longer named but described through that fact; a solver " +
				"must then find the bridge first. Keep the answer exactly \"{answer}\". Write one question, not two joined by " +
				"\"and\". The fact is a self-contained declarative sentence from the linked page.\n\n" +
				`Reply format: {"fact": "...", "bridge": "what the question no longer names", "question": "...", "answer": "..."}` + jsonOnlyFooter,
		},
		{
			Name:        PromptCovered,
			Description: "synthesis: is a new fact already among the statements",
			Chat:        true,
			Text: "## Task: check coverage\n" +
				"Statements:\n{statements}\n\nNew fact: {fact}\n\n" +
				"Do the statements already give the information of the new fact, possibly in other words?\n\n" +
				`Reply format: {"covered": true or false}` + jsonOnlyFooter,
		},
		{
			Name:        PromptFuzz,
			Description: "synthesis: make one detail of the question vaguer",
			Chat:        true,
			Text: "## Task: fuzz a detail\n" +
				"Current question: {question}\nAnswer: {answer}\nWhat is known (statements):\n{statements}\n\n" +
				"Rewrite the question making exactly one precise detail vaguer (a year becomes a decade, a number a range, a name a " +
				"description) so that no single clue gives the answer away. The answer stays exactly \"{answer}\" and stays the " +
				"only correct answer.\n\n" +
				`Reply format: {"question": "...", "answer": "...", "obscured": "the detail made vaguer"}` + jsonOnlyFooter,
		},
		{
			Name:        PromptQuality,
			Description: "synthesis: quality check of a candidate question against the statements",
			Chat:        true,
			Text: "## Task: check quality\n" +
				"Question: {question}\nProposed answer: {answer}\nStatements:\n{statements}\n\n" +
				"Judge the question:\n" +
				"- well_formed: one grammatical question asking for a short answer;\n" +
				"- single: it is not several questions joined together;\n" +
				"- answerable: the statements together are enough to work out the answer;\n" +
				"- answer_correct: according to the statements the proposed answer is correct and the only correct answer.\n\n" +
				`Reply format: {"well_formed": true, "single": true, "answerable": true, "answer_correct": true, "reason": "one sentence"}` + jsonOnlyFooter,
		},
		{
			Name:        PromptSolve,
			Description: "synthesis: the solver answers without tools (difficulty check)",
			Chat:        true,
			Text: "## Task: answer from memory\n" +
				"Answer the question from what you know; you cannot search. Think briefly, then write the final answer " +
				"(a few words) as <answer> answer </answer>.\n\nQuestion: {question}",
		},
		{
			Name:        PromptUnique,
			Description: "synthesis: is a solver's different answer also correct (uniqueness check)",
			Chat:        true,
			Text: "## Task: check an alternative answer\n" +
				"Question: {question}\nReference answer: {answer}\nStatements:\n{statements}\n\nAlternative answer: {alternative}\n\n" +
				"Going only by the statements and well-known facts, does the alternative answer also satisfy every condition of the " +
				"question, so that the question has more than one correct answer?\n\n" +
				`Reply format: {"also_correct": true or false, "reason": "one sentence"}` + jsonOnlyFooter,
		},
	}
}
