// Package model opens a model reference (a Hugging Face style directory or an
// org/name id in the offline Hugging Face cache) into everything a command
// needs to run it: the typed config, the weights on a compute backend, the
// tokenizer and the chat template.
//
// It is the one place where weights/, engine/ and tokenizer/ meet, so that the
// command line, the probes and the benchmarks open models the same way.
package model

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"tether/engine"
	"tether/tokenizer"
	"tether/weights"
)

// Model is an opened model: its files, its config, its weights on a backend
// and its tokenizer.
type Model struct {
	// Ref is the reference the user gave; Dir the directory it resolved to.
	Ref, Dir string
	// Name is a short human name: the org/name id, or the directory's base name.
	Name   string
	Config *weights.Config
	// Engine runs the forward pass; nil when opened with Options.NoWeights.
	Engine *engine.Model
	// Tokenizer encodes and decodes text for this model.
	Tokenizer tokenizer.Tokenizer
	// ChatTemplateSource is the Jinja source of the default chat template, ""
	// when the model has none; ChatTemplateFile is the file it comes from
	// (named in errors). The template is parsed on first use (see
	// ChatTemplate), so that a broken template only stops commands that
	// render chats.
	ChatTemplateSource, ChatTemplateFile string
	// EnableThinking is the enable_thinking value chat templates that read
	// it are rendered with (Qwen 3's and the like); false by default, as the
	// reference pipeline renders: answers without a reasoning block.
	EnableThinking bool
	// TokenizerConfig holds bos/eos tokens and the raw tokenizer_config.json
	// (zero value when the file is absent).
	TokenizerConfig *tokenizer.TokenizerConfig
	// WeightBytes is the size of the weights in their checkpoint dtype.
	WeightBytes int64
	// LoadTime is how long opening took (weights upload included).
	LoadTime time.Duration
	// Memory is how Options.Workload fits in the backend's free memory,
	// checked before loading (zero when the free memory could not be read
	// or NoWeights was set). Memory.Warning says when the context had to
	// be shortened.
	Memory engine.MemoryPlan

	checkpoint *weights.Checkpoint
	chat       chatState
}

// Options controls Open.
type Options struct {
	// Backend is the compute backend name for engine.NewBackend ("" = "cpu").
	Backend string
	// WeightDType is engine.LoadOptions.WeightDType: "" or "auto" (the
	// backend's default), "f32", "bf16" or "f16".
	WeightDType string
	// CopyWeights is engine.LoadOptions.CopyWeights: copy every weight
	// instead of reading those used as stored where they lie in the
	// memory-mapped checkpoint.
	CopyWeights bool
	// CacheDType is engine.LoadOptions.CacheDType: "" or "f32" (float32),
	// "bf16" or "f16" (the K and V caches in half the memory).
	CacheDType string
	// NoWeights opens config, tokenizer and template only (for info, tokenize, template).
	NoWeights bool
	// NoTokenizer skips the tokenizer (for a weights-only directory).
	NoTokenizer bool
	// TokenizerOnly opens the tokenizer and chat template alone: a directory
	// holding only tokenizer.json and tokenizer_config.json is enough, and
	// Config is nil (for tokenize and template).
	TokenizerOnly bool
	// EnableThinking sets Model.EnableThinking.
	EnableThinking bool
	// Workload is the largest run the caller plans (batch, prompt, new
	// tokens), checked against the backend's free memory before the weights
	// load (engine.PlanMemory); zero fields mean batch 1, a 1-token prompt
	// and no new tokens: the weights alone must fit.
	Workload engine.MemoryWorkload
}

// loadOptions are the engine's options for loading the weights.
func (o Options) loadOptions() engine.LoadOptions {
	return engine.LoadOptions{WeightDType: o.WeightDType, CopyWeights: o.CopyWeights, CacheDType: o.CacheDType}
}

// Open resolves ref and opens it.
func Open(ref string, opts Options) (*Model, error) {
	start := time.Now()
	dir, err := weights.ResolveModel(ref)
	if err != nil {
		return nil, err
	}
	m := &Model{Ref: ref, Dir: dir, Name: displayName(ref, dir), EnableThinking: opts.EnableThinking}
	if !opts.TokenizerOnly {
		if m.Config, err = weights.LoadConfig(dir); err != nil {
			return nil, err
		}
	}
	if !opts.NoTokenizer {
		if m.Tokenizer, err = tokenizer.LoadDir(dir); err != nil {
			return nil, err
		}
		if err := m.loadChat(); err != nil {
			return nil, err
		}
	}
	if opts.TokenizerOnly {
		m.LoadTime = time.Since(start)
		return m, nil
	}
	cfg := m.Config

	m.checkpoint, err = weights.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	m.checkpoint.SetPrefix(cfg.TensorPrefix)
	m.WeightBytes = m.checkpoint.TotalBytes()
	if err := cfg.ValidateSource(m.checkpoint); err != nil {
		m.Close()
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	if !opts.NoWeights {
		if err := m.planMemory(opts); err != nil {
			m.Close()
			return nil, fmt.Errorf("model %s: %w", dir, err)
		}
		backend, err := engine.NewBackend(opts.Backend)
		if err != nil {
			m.Close()
			return nil, err
		}
		if m.Engine, err = engine.LoadWithOptions(backend, cfg, m.checkpoint, opts.loadOptions()); err != nil {
			m.Close()
			return nil, fmt.Errorf("model %s: %w", dir, err)
		}
	}
	m.LoadTime = time.Since(start)
	return m, nil
}

// planMemory checks that the weights and opts.Workload fit in the free
// memory of opts.Backend before anything is loaded (see engine.PlanMemory).
// When the free memory cannot be read (no nvidia-smi, no /proc/meminfo) the
// check is skipped and m.Memory stays zero.
func (m *Model) planMemory(opts Options) error {
	avail, err := engine.QueryAvailableMemory(opts.Backend)
	if err != nil {
		return nil
	}
	w := opts.Workload
	w.Batch, w.Prompt = max(w.Batch, 1), max(w.Prompt, 1)
	m.Memory, err = engine.PlanMemory(m.Config, m.WeightBytes, opts.Backend, opts.loadOptions(), w, avail)
	return err
}

// loadChat reads tokenizer_config.json (when present) and finds the default
// chat template (in it or in chat_template.jinja/json beside it). The
// template is not parsed here, and an unreadable template file is not an
// error yet: both wait for the first chat rendering (see ChatTemplate).
func (m *Model) loadChat() error {
	m.TokenizerConfig = &tokenizer.TokenizerConfig{}
	path := filepath.Join(m.Dir, "tokenizer_config.json")
	if _, err := os.Stat(path); err == nil {
		if m.TokenizerConfig, err = tokenizer.LoadTokenizerConfig(path); err != nil {
			return err
		}
	}
	templates, err := tokenizer.LoadChatTemplates(m.Dir)
	if err != nil {
		m.chat.loadErr = err
		return nil
	}
	src, ok := templates[tokenizer.DefaultChatTemplateName]
	if !ok {
		return nil
	}
	m.ChatTemplateSource, m.ChatTemplateFile = src, templateFile(m.Dir, m.TokenizerConfig, src)
	return nil
}

// templateFile names the file the default template src was read from:
// LoadChatTemplates lets chat_template.jinja override chat_template.json,
// which overrides tokenizer_config.json.
func templateFile(dir string, tc *tokenizer.TokenizerConfig, src string) string {
	jinja := filepath.Join(dir, "chat_template.jinja")
	if _, err := os.Stat(jinja); err == nil {
		return jinja
	}
	if tc.ChatTemplates[tokenizer.DefaultChatTemplateName] != src {
		return filepath.Join(dir, "chat_template.json")
	}
	return filepath.Join(dir, "tokenizer_config.json")
}

// displayName is the org/name id when ref is one, else the directory's name.
func displayName(ref, dir string) string {
	if st, err := os.Stat(ref); err == nil && st.IsDir() {
		return filepath.Base(filepath.Clean(dir))
	}
	return ref
}

// Close releases the weights (the backend buffers, then the mmapped
// checkpoint, which the engine keeps mapped while its buffers are views of
// it).
func (m *Model) Close() {
	if m.Engine != nil {
		m.Engine.Close()
	}
	if m.checkpoint != nil {
		m.checkpoint.Close()
	}
}
