package main

import (
	"fmt"

	"tether/tokenizer"
	"tether/weights"
)

func init() {
	register("convert llama2c", "convert a llama2.c checkpoint and tokenizer into a Hugging Face style directory", runConvertLlama2c)
}

func runConvertLlama2c(args []string) error {
	fs := newFlags("convert llama2c", "--model X.bin --tokenizer tok.bin --out DIR",
		"tether convert llama2c --model bundled/stories260K/stories260K.bin --tokenizer bundled/stories260K/tok512.bin --out /tmp/stories260K")
	modelPath := fs.String("model", "", "llama2.c checkpoint (.bin, v0 format)")
	tokPath := fs.String("tokenizer", "", "llama2.c tokenizer (tokenizer.bin / tok512.bin)")
	out := fs.String("out", "", "output directory (config.json, model.safetensors, tokenizer.json)")
	if err := parseFlags(fs, args, "model", "tokenizer", "out"); err != nil {
		return err
	}
	if err := checkOutputDir("out", *out); err != nil {
		return fmt.Errorf("convert llama2c: %w", err)
	}
	if err := convertLlama2c(*modelPath, *tokPath, *out); err != nil {
		return err
	}
	fmt.Printf("wrote %s (config.json, model.safetensors, tokenizer.json, tokenizer_config.json)\n", *out)
	return nil
}

// convertLlama2c writes the weights and the tokenizer of a llama2.c model
// into one Hugging Face style directory.
func convertLlama2c(modelPath, tokPath, out string) error {
	if err := weights.ConvertLlama2c(modelPath, out); err != nil {
		return err
	}
	return tokenizer.ConvertLlama2cTokenizer(tokPath, out)
}
