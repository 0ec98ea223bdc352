#!/usr/bin/env python3
"""Render the chat fixtures of tether's one chat renderer with the Python reference.

Every command path that turns a conversation into tokens (persona rollout prompt, capture span,
project, judge, chat, generate --chat, bench drift and capability) must give the text written
here, byte for byte. Run from this directory:

    python3 gen.py

It needs only Debian's python3-jinja2 (3.1.x) and reuses the transformers-like jinja2
environment of tokenizer/chattemplate/testdata/gen.py. It writes fixtures.json.

The rendering policy is the reference Assistant Axis pipeline's, written here independently of
the Go code:

  - assistant_axis/generation.py format_conversation: render [system "__SYSTEM_TEST__",
    user "hello"] without a generation prompt; if that raises, or its output lacks the test
    text, the template does not support system prompts, and the system prompt is folded into
    the user turn as f"{instruction}\\n\\n{question}";
  - enable_thinking=False is passed to templates that take it (the reference passes it for
    Qwen models; here: templates whose source mentions enable_thinking), True in the cases
    that turn it on;
  - the template variables are bos_token, eos_token (and pad_token, unk_token when the
    tokenizer config sets them), as transformers passes the special tokens.

Without a chat template tether uses a plain format, specified here: "User: <text>\\n" and
"Assistant: <text>\\n" per turn, "Assistant:" as the generation prompt, a system prompt always
folded into the first user turn as above.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.dont_write_bytecode = True  # no __pycache__ in tokenizer/testdata
sys.path.insert(0, os.path.join(ROOT, "tokenizer", "testdata", "templates"))
import gen as templates_gen  # noqa: E402  (the jinja2 environment of the template fixtures)

SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "tokenizers"))
TEST_MESSAGE = "__SYSTEM_TEST__"


def m(role, content):
    return {"role": role, "content": content}


SYSTEM = "You are a lighthouse keeper on a remote island. Speak as {model_name} would never speak."
Q1 = "What do you see tonight?"
A1 = "Fog, mostly. And the beam sweeping over black water."
Q2 = "Are you ever lonely out there?"
A2 = "  The gulls keep me company; they are poor listeners.\n"

# name -> (messages, add_generation_prompt). The paths each case stands for are listed in the Go
# tests that read them.
CONVERSATIONS = {
    "system_prompt": ([m("system", SYSTEM), m("user", Q1)], True),
    "system_full": ([m("system", SYSTEM), m("user", Q1), m("assistant", A1)], False),
    "user_prompt": ([m("user", Q1)], True),
    "user_full": ([m("user", Q1), m("assistant", A1)], False),
    "multi_prompt": ([m("system", SYSTEM), m("user", Q1), m("assistant", A1), m("user", Q2)], True),
    "multi_full": ([m("system", SYSTEM), m("user", Q1), m("assistant", A1), m("user", Q2), m("assistant", A2)], False),
    "multi_prompt_no_system": ([m("user", Q1), m("assistant", A1), m("user", Q2)], True),
}


def load_config(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    tok = templates_gen.token_text
    return cfg["chat_template"], {
        "bos_token": tok(cfg.get("bos_token")),
        "eos_token": tok(cfg.get("eos_token")),
        **{k: tok(cfg[k]) for k in ("pad_token", "unk_token") if cfg.get(k) is not None and tok(cfg[k]) != ""},
    }


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def models():
    """name -> (template source or None, variables, where the Go test finds the template, tokenizer)."""
    qwen_src, qwen_vars = load_config(os.path.join(SHARED, "qwen3", "tokenizer_config.json"))
    gemma2 = os.path.join(ROOT, "tokenizer", "chattemplate", "testdata", "gemma2_chat_template.jinja")
    return {
        # Qwen 3: takes a system prompt and enable_thinking.
        "qwen3": (qwen_src, qwen_vars, "shared:qwen3/tokenizer_config.json", "shared:qwen3"),
        # Gemma 2: raises on a system message.
        "gemma2": (read(gemma2), {"bos_token": "<bos>", "eos_token": "<eos>"},
                   "tokenizer/chattemplate/testdata/gemma2_chat_template.jinja", "shared:gemma3"),
        # A ChatML template that silently leaves system messages out.
        "drops_system": (read(os.path.join(HERE, "drops_system.jinja")), {"bos_token": "", "eos_token": "<|im_end|>"},
                         "model/testdata/chat/drops_system.jinja", "shared:qwen3"),
        # No chat template: the bundled stories260K.
        "plain": (None, {}, "", "stories260K"),
    }


def supports_system(tmpl, variables):
    """assistant_axis.generation.format_conversation's test."""
    try:
        out = tmpl.render(messages=[m("system", TEST_MESSAGE), m("user", "hello")], add_generation_prompt=False,
                          tools=None, documents=None, **variables)
        return TEST_MESSAGE in out
    except Exception:
        return False


def fold(messages):
    if messages and messages[0]["role"] == "system":
        first = messages[0]["content"]
        user = messages[1]["content"]
        return [m("user", f"{first}\n\n{user}" if first else user)] + messages[2:]
    return messages


def render_plain(messages, add_generation_prompt):
    out = ""
    for msg in fold(messages):
        out += {"user": "User: ", "assistant": "Assistant: "}[msg["role"]] + msg["content"] + "\n"
    if add_generation_prompt:
        out += "Assistant:"
    return out


def main():
    fixtures = {"generator": "model/testdata/chat/gen.py with jinja2 %s" % templates_gen.jinja2.__version__,
                "models": {}, "cases": []}
    for name, (source, variables, where, tokenizer) in models().items():
        info = {"template": where, "tokenizer": tokenizer, "variables": variables}
        fixtures["models"][name] = info
        thinking_options = [None]
        if source is None:
            info["system"] = "folded (no template)"
            for case, (messages, gen) in CONVERSATIONS.items():
                fixtures["cases"].append({"model": name, "name": case, "messages": messages,
                                          "add_generation_prompt": gen, "text": render_plain(messages, gen)})
            continue
        tmpl = templates_gen.compile_template(source)
        system_ok = supports_system(tmpl, variables)
        info["system"] = "template" if system_ok else "folded"
        if "enable_thinking" in source:
            thinking_options = [False, True]
        for thinking in thinking_options:
            extra = {} if thinking is None else {"enable_thinking": thinking}
            for case, (messages, gen) in CONVERSATIONS.items():
                rendered = messages if system_ok else fold(messages)
                text = tmpl.render(messages=rendered, add_generation_prompt=gen, tools=None, documents=None,
                                   **variables, **extra)
                c = {"model": name, "name": case, "messages": messages, "add_generation_prompt": gen, "text": text}
                if thinking is not None:
                    c["enable_thinking"] = thinking
                fixtures["cases"].append(c)
    with open(os.path.join(HERE, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(fixtures, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote %d cases for %d models" % (len(fixtures["cases"]), len(fixtures["models"])))


if __name__ == "__main__":
    main()
