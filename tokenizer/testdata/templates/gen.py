#!/usr/bin/env python3
"""Render chat-template fixtures with the Python reference (jinja2).

The Go chat-template renderer (tokenizer/template*.go) must reproduce these
outputs byte for byte. Run from this directory:

    python3 gen.py

It needs only Debian's python3-jinja2 (3.1.x) and reads the real templates
from ../../../../shared/tokenizers/*/tokenizer_config.json plus the two
templates kept here (SmolLM2's, Llama 3.2's). It writes fixtures.json.

The jinja2 environment is configured like transformers'
_compile_jinja_template: ImmutableSandboxedEnvironment with trim_blocks,
lstrip_blocks and the loopcontrols extension, a tojson filter that calls
json.dumps(ensure_ascii=False, ...), raise_exception raising TemplateError
and strftime_now. strftime_now uses a FIXED clock (FIXED_NOW) so the
fixtures are reproducible; the Go test injects the same instant.

The variables passed are those the Go side passes: messages (dicts with role
and content), add_generation_prompt, bos_token, eos_token, tools=None,
documents=None, plus enable_thinking when a case sets it, plus a case's
extra variables.
"""

import datetime
import json
import os

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "tokenizers"))

# The fixed "now" of strftime_now: a single-digit day so that %d padding is checked.
FIXED_NOW = datetime.datetime(2025, 3, 9, 14, 5, 7)


class RaisedByTemplate(jinja2.exceptions.TemplateError):
    """What raise_exception raises (transformers raises a plain TemplateError;
    the subclass only lets the fixtures tell the template's own errors apart)."""


def compile_template(source):
    """Compile like transformers.utils.chat_template_utils._compile_jinja_template."""

    def raise_exception(message):
        raise RaisedByTemplate(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return FIXED_NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def token_text(tok):
    """A special token from tokenizer_config.json: a string, an AddedToken dict or null."""
    if tok is None:
        return ""
    if isinstance(tok, dict):
        return tok.get("content", "")
    return tok


def load_config_template(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    return cfg["chat_template"], token_text(cfg.get("bos_token")), token_text(cfg.get("eos_token"))


def templates():
    """name -> (source, bos, eos, where the Go test finds the source)."""
    out = {}
    out["smollm2"] = load_config_template(os.path.join(HERE, "smollm2_tokenizer_config.json")) + (
        "testdata:smollm2_tokenizer_config.json",)
    for name in ("qwen3", "llama3", "gemma3"):
        out[name] = load_config_template(os.path.join(SHARED, name, "tokenizer_config.json")) + (
            "shared:%s/tokenizer_config.json" % name,)
    with open(os.path.join(HERE, "llama3.2_chat_template.jinja"), encoding="utf-8") as f:
        out["llama3.2"] = (f.read(), "<|begin_of_text|>", "<|eot_id|>", "testdata:llama3.2_chat_template.jinja")
    return out


def m(role, content):
    return {"role": role, "content": content}


SYSTEM = m("system", "You are a careful assistant.")
USER1 = m("user", "What is the capital of France?")
ASSIST1 = m("assistant", "The capital of France is Paris.")
USER2 = m("user", "And of Italy?")
THINK_ASSIST = m("assistant", "<think>\nThe user asks about France.\nParis.\n</think>\n\nThe capital of France is Paris.")
THINK_ASSIST2 = m("assistant", "<think>Italy: Rome.</think>Rome.")
UNICODE = m("user", "Ünïcödé ✓ — 日本語のテキスト, emoji 🤖🎉, RTL עברית, \"quotes\" and 'apostrophes' \\ backslash")
JINJA_LOOKING = m("user", "{{ not a template }} {% if %} {# nor this #} <|im_end|>")
SPACES = m("user", "  \n padded with spaces and newlines \n\n ")

# A tool schema; keys sorted at every level (Go maps render their keys sorted).
TOOLS = [{
    "function": {
        "description": "Get the current weather in a city, with ünïcode.",
        "name": "get_weather",
        "parameters": {
            "properties": {"city": {"description": "City name", "type": "string"}},
            "required": ["city"],
            "type": "object",
        },
    },
    "type": "function",
}]

COMMON_CASES = [
    ("single_user_gen", [USER1], True, {}),
    ("single_user_nogen", [USER1], False, {}),
    ("system_user_gen", [SYSTEM, USER1], True, {}),
    ("system_user_nogen", [SYSTEM, USER1], False, {}),
    ("multi_turn_gen", [USER1, ASSIST1, USER2], True, {}),
    ("multi_turn_system_gen", [SYSTEM, USER1, ASSIST1, USER2], True, {}),
    ("ends_with_assistant_nogen", [SYSTEM, USER1, ASSIST1], False, {}),
    ("think_blocks_gen", [USER1, THINK_ASSIST, USER2], True, {}),
    ("think_blocks_last_assistant", [USER1, THINK_ASSIST, USER2, THINK_ASSIST2], False, {}),
    ("unicode_gen", [SYSTEM, UNICODE], True, {}),
    ("jinja_looking_content", [JINJA_LOOKING], True, {}),
    ("empty_content_gen", [m("system", ""), m("user", ""), m("assistant", ""), m("user", "")], True, {}),
    ("whitespace_content", [SPACES, m("assistant", "\n\nanswer\n\n"), SPACES], True, {}),
    ("non_alternating_users", [USER1, USER2], True, {}),
    ("assistant_first", [ASSIST1, USER1], True, {}),
    ("system_in_middle", [USER1, ASSIST1, m("system", "Be brief."), USER2], True, {}),
    ("tool_role", [USER1, ASSIST1, m("tool", "{\"temp\": 21}"), m("tool", "second tool result")], True, {}),
    ("unknown_role", [m("narrator", "Once upon a time."), USER1], True, {}),
    ("ipython_role", [USER1, m("ipython", "result: 42 ✓")], False, {}),
    ("empty_conversation", [], True, {}),
]

QWEN3_CASES = [
    ("enable_thinking_true", [USER1], True, {"enable_thinking": True}),
    ("enable_thinking_false", [USER1], True, {"enable_thinking": False}),
    ("enable_thinking_false_nogen", [USER1], False, {"enable_thinking": False}),
    ("enable_thinking_false_multi", [SYSTEM, USER1, THINK_ASSIST, USER2], True, {"enable_thinking": False}),
    ("tools", [SYSTEM, USER1], True, {"tools": TOOLS}),
    ("tools_no_system", [USER1], True, {"tools": TOOLS}),
    ("tool_response_user", [m("user", "<tool_response>\nx\n</tool_response>"), ASSIST1], False, {}),
]

LLAMA32_CASES = [
    ("tools_in_user_message", [SYSTEM, USER1], True, {"tools": TOOLS}),
    ("tools_in_system", [SYSTEM, USER1], True, {"tools": TOOLS, "tools_in_user_message": False}),
    ("tools_without_user", [SYSTEM], True, {"tools": TOOLS}),
    ("date_string_given", [USER1], True, {"date_string": "01 Jan 2000"}),
]

PER_TEMPLATE = {"qwen3": QWEN3_CASES, "llama3.2": LLAMA32_CASES}


def render(tmpl, messages, add_generation_prompt, bos, eos, extra):
    variables = {
        "messages": messages,
        "tools": None,
        "documents": None,
        "add_generation_prompt": add_generation_prompt,
        "bos_token": bos,
        "eos_token": eos,
    }
    variables.update(extra)
    try:
        return {"output": tmpl.render(**variables)}
    except RaisedByTemplate as e:
        return {"error": str(e), "error_kind": "raise_exception"}
    except jinja2.exceptions.TemplateError as e:
        return {"error": str(e), "error_kind": "jinja"}


def main():
    fixtures = {
        "generator": "tokenizer/testdata/templates/gen.py with jinja2 %s" % jinja2.__version__,
        "fixed_now": FIXED_NOW.isoformat(),
        "templates": {},
        "cases": [],
    }
    for name, (source, bos, eos, where) in templates().items():
        fixtures["templates"][name] = {"source": where, "bos_token": bos, "eos_token": eos}
        tmpl = compile_template(source)
        for case_name, messages, gen, extra in COMMON_CASES + PER_TEMPLATE.get(name, []):
            case = {
                "template": name,
                "name": case_name,
                "messages": messages,
                "add_generation_prompt": gen,
                "extra": extra,
            }
            case.update(render(tmpl, messages, gen, bos, eos, extra))
            fixtures["cases"].append(case)
    with open(os.path.join(HERE, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(fixtures, f, indent=1, ensure_ascii=False)
        f.write("\n")
    errors = sum(1 for c in fixtures["cases"] if "error" in c)
    print("wrote %d cases (%d raise) for %d templates" % (len(fixtures["cases"]), errors, len(fixtures["templates"])))


if __name__ == "__main__":
    main()
