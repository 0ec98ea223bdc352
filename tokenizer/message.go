package tokenizer

// Message is one turn of a conversation: a role ("system", "user",
// "assistant") and its text. A chat template (package tokenizer/chattemplate)
// sees it as a dict with the keys "role" and "content".
type Message struct {
	Role    string
	Content string
}
