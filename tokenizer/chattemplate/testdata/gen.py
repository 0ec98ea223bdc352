#!/usr/bin/env python3
"""Render chat-template fixtures with the Python reference (jinja2).

The Go chat-template renderer (package tokenizer/chattemplate) must reproduce these
outputs byte for byte. Run from this directory:

    python3 gen.py

It needs only Debian's python3-jinja2 (3.1.x) and reads the real templates
from ../../../../shared/tokenizers/*/tokenizer_config.json plus the
templates kept here (SmolLM2's, Llama 3.2's, Mistral 7B Instruct v0.1's,
Gemma 2's, as published with those models). It writes fixtures.json.

The jinja2 environment is configured like transformers'
_compile_jinja_template: ImmutableSandboxedEnvironment with trim_blocks,
lstrip_blocks, the loopcontrols extension and the {% generation %} tag, a tojson filter that calls
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
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "shared", "tokenizers"))

# The fixed "now" of strftime_now: a single-digit day so that %d padding is checked.
FIXED_NOW = datetime.datetime(2025, 3, 9, 14, 5, 7)


class GenerationTag(Extension):
    """The {% generation %} block of transformers' AssistantTracker, as it
    behaves when assistant masks are not requested: it renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


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

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols])
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
    for name, bos, eos in (("llama3.2", "<|begin_of_text|>", "<|eot_id|>"),
                           ("mistral_v0.1", "<s>", "</s>"),
                           ("gemma2", "<bos>", "<eos>")):
        fname = "%s_chat_template.jinja" % name
        with open(os.path.join(HERE, fname), encoding="utf-8") as f:
            out[name] = (f.read(), bos, eos, "testdata:" + fname)
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

# Small synthetic templates, each exercising Jinja features that chat
# templates use (and the source rewrite for nested conditionals). They are
# rendered over FEATURE_CASES.
FEATURE_TEMPLATES = {
    "cond_in_parens": "{{ 'a' + ('b' if add_generation_prompt else 'c') + 'd' }}",
    "cond_chained": "{{ 'x' if messages|length > 5 else 'y' if messages|length > 2 else 'z' }}",
    "cond_in_list_and_call": "{{ ['p' if add_generation_prompt else 'q', 'r'] | join(',') }}|{{ 'abc'.replace('b' if true else 'c', 'X' if false else 'Y') }}",
    "cond_in_dict": "{{ {'k': 'v' if add_generation_prompt else 'w', 'n': 1} | tojson }}",
    "cond_without_else": "[{{ ('v' if false) }}][{{ ('v' if true) }}]",
    "cond_nested": "{{ ('a' if (1 if add_generation_prompt else 2) == 1 else 'b') }}",
    "cond_in_elif": "{% for m in messages %}{% if m.role == 'user' %}U{% elif (m.role if m.content else 'empty') == 'assistant' %}A{% else %}S{% endif %}{% endfor %}",
    "cond_in_for_iterable": "{% for m in (messages[1:] if messages[0].role == 'system' else messages) %}{{ m.role }};{% endfor %}",
    "cond_set_without_else": "{% set x = 'a' if false %}[{{ x }}]{% set y = 'b' if true %}[{{ y }}]",
    "cond_in_set_chained": "{% set x = 'a' if false else 'b' if false else ('c' if true else 'd') %}{{ x }}",
    "cond_indented": "{% for m in messages %}\n    {{ (m.role if true else '') }}\n  {{- '|' }}\n\t{{- (m.role[0] if m.role else 'none') -}}\n  {% if true %}\n    [{{ ('in' if loop.first else 'out') }}]\n  {% endif %}\n{% endfor %}",
    "cond_whitespace_control": "A\n  {%- if (true if add_generation_prompt else false) %}\n  B\n  {%- endif %}\n  {{- ('C' if true) -}}\n  D\n  {%+ if ('x' if true) %}E{% endif %}\n",
    "string_methods": "{% for m in messages %}{{ m.content.strip() }}|{{ m.content.lstrip() }}|{{ m.content.rstrip() }}|{{ m.content.upper() }}|{{ m.content.lower() }}|{{ m.content.replace('o', '0') }}|{{ m.content.startswith('<') }}|{{ m.content.endswith(' ') }}|{{ m.content.split('</think>')[-1].lstrip('\\n') }}|{{ m.content.split('o')|length }}|{{ m.content.strip('<>') }}\n{% endfor %}",
    "string_split_default": "{{ messages[1].content.split()|join('+') }}|{{ ' a  b '.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(' ', 1) }}",
    "string_indexing": "{{ messages[1].content[0] }}|{{ messages[1].content[1] }}|{{ messages[1].content[1:4] }}|{{ messages[1].content[-3:] }}|{{ messages[1].content[::-1] }}|{{ messages[1].content|length }}",
    "string_filters": "{{ messages[1].content|upper }}|{{ messages[1].content|title }}|{{ messages[1].content|capitalize }}|{{ messages[1].content|trim }}|{{ messages[1].content|wordcount }}|{{ 'a\\nb'|indent(2) }}|{{ 'x'|replace('x','y') }}|{{ 'ab' ~ 1 }}",
    "list_filters": "{{ messages|length }}|{{ messages|map(attribute='role')|join(', ') }}|{{ messages|selectattr('role','equalto','user')|list|length }}|{{ (messages|last).role }}|{{ (messages|first).role }}|{{ messages|rejectattr('role','equalto','system')|map(attribute='content')|list|length }}|{{ [3,1,2]|sort|join }}|{{ messages|reverse|map(attribute='role')|join(',') }}|{{ messages|selectattr('role', 'in', ['user', 'assistant'])|list|length }}",
    "numbers": "{{ 3.0|int }}|{{ '5'|int + 1 }}|{{ 1/2 }}|{{ 7//2 }}|{{ 7 % 3 }}|{{ 1.0 }}|{{ 2.50 }}|{{ -3 }}|{{ 10 / 4 }}|{{ 4 / 2 }}",
    "printing": "{{ true }}|{{ false }}|{{ [1, 'a', true, 2.5] }}|{{ {'a': 1} }}|{{ messages[0] }}|{{ messages[1:] }}",
    "tojson_options": "{{ messages|tojson }}\n{{ messages|tojson(indent=2) }}\n{{ {'b': 1, 'a': [1, 2.5, none, true, 'é\\\"\\n\\t<&>'], 'c': {}} | tojson }}\n{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}\n{{ 'é😀' | tojson(ensure_ascii=true) }}\n{{ [1, [2, []]] | tojson(separators=(',', ':')) }}\n{{ messages[1].content | tojson }}\n{{ 1.5e-7 | tojson }} {{ 1234567890123 | tojson }} {{ 0.1 | tojson }}",
    "loop_variables": "{% for m in messages %}{{ loop.index }}/{{ loop.length }}:{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.revindex }}{{ loop.revindex0 }}{% if not loop.last %},{% endif %}{% endfor %}",
    "loop_controls": "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}{{ m.role }}{% if m.role == 'assistant' %}{% break %}{% endif %};{% endfor %}",
    "loop_filter": "{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role }}{% endfor %}",
    "reverse_loop": "{% for m in messages[::-1] %}{{ (messages|length - 1) - loop.index0 }}{{ m.role }};{% endfor %}{% for m in messages|reverse %}{{ m.role[0] }}{% endfor %}",
    "namespace": "{% set ns = namespace(found=false, n=0, last='') %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% set ns.n = ns.n + 1 %}{% set ns.last = m.content %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }} {{ ns.last }}",
    "scoping": "{% set x = 1 %}{% for m in messages %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set y = 3 %}{% endif %}{{ y }}",
    "dict_access": "{% for k, v in messages[0].items() %}{{ k }}={{ v }};{% endfor %}|{{ messages[0].get('name', 'anon') }}|{{ messages[0].get('role') }}|{{ 'role' in messages[0] }}|{{ 'tool_calls' in messages[0] }}|{{ messages[0].keys()|list }}|{{ messages[0]['role'] }}|{{ messages[0].role }}|{{ messages[0].missing is defined }}",
    "tests": "{{ x is defined }} {{ none is none }} {{ messages is sequence }} {{ 'a' is string }} {{ 1 is number }} {{ messages[0] is mapping }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ tools is none }} {{ documents is none }} {{ enable_thinking is defined }} {{ true is true }} {{ 0 is false }} {{ 3 is odd }} {{ 'abc' is lower }} {{ messages[0] is string }} {{ messages is mapping }} {{ none is string }} {{ 1 is integer }} {{ 1.5 is float }}",
    "truthiness": "{% if messages[0].content %}T{% else %}F{% endif %}{% if [] %}T{% else %}F{% endif %}{% if '' %}T{% else %}F{% endif %}{% if none %}T{% else %}F{% endif %}{% if tools %}T{% else %}F{% endif %}{% if not tools %}N{% endif %}",
    "defaults": "{{ x | default('d') }}|{{ '' | default('d', true) }}|{{ tools | default('dt', true) }}",
    "macros": "{% macro fmt(m, sep=':') %}[{{ m.role }}{{ sep }}{{ m.content|trim }}]{% endmacro %}{% for m in messages %}{{ fmt(m) }}{{ fmt(m, sep='=') }}{% endfor %}",
    "block_set": "{% set content %}{{ messages[0].role }}-{{ messages|length }}{% endset %}<{{ content }}>",
    "whitespace_control": "A\n  {% if true %}\n    B\n  {% endif %}\n  {%- if true -%}\n    C\n  {%- endif %}\n  {{ 'D' }}\n  {%+ if true %}E{% endif %}\n{# comment #}\nF\n  {# indented comment #}\nG {{- ' H ' -}} I\n\n",
    "raw_block": "{% raw %}{{ not rendered }} {% if %}{% endraw %}|{{ 'after' }}",
    "string_content_getitem": "[{{ messages[1]['content'][0]['text'] }}]",
    "raise_in_macro": "{% macro check(m) %}{% if m.role == 'assistant' %}{{ raise_exception('assistant seen: ' ~ m.content|length) }}{% endif %}{% endmacro %}{% for m in messages %}{{ check(m) }}{{ m.role }};{% endfor %}",
    "strftime": "{{ strftime_now('%Y-%m-%d %H:%M:%S|%a %A %b %B|%j %p %I %y|%e|%-d|%D|%F|%T|%%|%U %W %w %u %V %G') }}",
    "format_and_escapes": "{{ '%s-%d'|format('a', 3) }}|{{ \"it's\" }}|{{ 'say \\\"hi\\\"' }}|{{ 'tab\\there' }}|{{ 'uni\\u00e9' }}|{{ '<b>&amp;' }}",
    "generation_tag": "{% for m in messages %}{% if m.role == 'assistant' %}\n  {% generation %}\n  {{ m.content }}\n  {%- endgeneration %}\n{% else %}{{ m.content }}{% endif %}{% endfor %}",
    "string_escapes": "{{ 'it\\'s' }}|{{ \"a\\\\b\" }}|{{ '\\x41\\u00e9' }}|{{ \"q\\\"q\" }}|{{ 'a' ~ 'b' * 2 }}",
    "float_printing": "{{ 1/3 }}|{{ 0.1 + 0.2 }}|{{ 1e20 }}|{{ 2.0 * 3 }}|{{ 7 / 7 }}|{{ -0.5 }}|{{ 1e-7 }}|{{ 3 // 2 }}|{{ 10 % 4 }}",
    "more_filters": "{{ 'héllo'|list|length }}|{{ 'héllo'|length }}|{{ 'héllo'|first }}|{{ 'héllo'|last }}|{{ messages|map(attribute='content')|map('length')|list }}|{{ [1, 2, 3]|sum }}|{{ [3, 1]|max }}|{{ ['a', 'b']|join }}|{{ 'a b'|replace(' ', '_') }}|{{ 42|string + 'x' }}|{{ 'x'|center(5) }}|{{ messages|selectattr('content')|list|length }}",
    "loop_extras": "{% for m in messages %}{{ loop.cycle('odd', 'even') }}:{{ loop.previtem.role if loop.previtem is defined else '-' }}>{{ loop.nextitem.role if loop.nextitem is defined else '-' }};{% endfor %}",
    "items_loop": "{% for k, v in {'x': 1, 'y': [2]}.items() %}{{ k }}{{ v }}{% endfor %}|{% for i in range(3) %}{{ i }}{% endfor %}|{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}",
    "is_none_and_compare": "{{ enable_thinking is defined and enable_thinking is false }}|{{ messages|length == 3 }}|{{ 'a' < 'b' }}|{{ 'abc' in 'xabcx' }}|{{ 2 in [1, 2] }}|{{ not (1 == 1) }}|{{ 1 != 2 }}",
}

# Constructs where gonja still differs from jinja2 (see the Go package
# documentation). The Go test reports them as skipped while they differ.
KNOWN_GAPS = {
    "gap_int_power": ("{{ 2**3 }}", "gonja computes ** in floating point: 2**3 prints 8.0"),
    "gap_print_none": ("{{ none }}|{{ tools }}|{{ [1, none] }}", "gonja prints None as an empty string"),
    "gap_none_is_defined": ("{{ tools is defined }}|{{ none | default('d') }}",
                            "gonja does not tell None from undefined: None is not 'defined' and default() replaces it"),
    "gap_tuple": ("{{ ('a', 'b') }}", "gonja has no tuples: a tuple prints as a list"),
    "gap_percent_format": ("{{ '%-5s|' % 'ab' }}", "gonja has no printf-style % on strings (it fails with an error)"),
    "gap_floor_division": ("{{ -7 // 2 }}", "gonja's // truncates towards zero: -7 // 2 gives -3, Python -4"),
    "gap_dictsort_literal": ("{{ {'b': 1, 'a': 2}|dictsort }}", "gonja's dictsort gives [] for a dict literal"),
    "gap_empty_dict_literal": ("{% if {} %}T{% else %}F{% endif %}", "gonja treats an empty dict literal as true"),
}

LONG_USER = m("user", "Héllo wörld, 日本 ✓  ")
FEATURE_CASES = [
    ("three", [SYSTEM, LONG_USER, m("assistant", "<think>\nhm\n</think>\n\nok ")], True, {}),
    ("no_system", [m("user", " <b>x</b> "), m("assistant", "y"), m("user", "")], False, {"enable_thinking": False}),
]


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
    except Exception as e:  # e.g. TypeError from Python code the template calls
        return {"error": "%s: %s" % (type(e).__name__, e), "error_kind": "python"}


def main():
    fixtures = {
        "generator": "tokenizer/chattemplate/testdata/gen.py with jinja2 %s" % jinja2.__version__,
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
    features = [(name, source, None) for name, source in FEATURE_TEMPLATES.items()]
    features += [(name, source, gap) for name, (source, gap) in KNOWN_GAPS.items()]
    for name, source, gap in features:
        fixtures["templates"][name] = {"source": "inline", "template": source, "bos_token": "<s>", "eos_token": "</s>"}
        if gap:
            fixtures["templates"][name]["known_gap"] = gap
        try:
            tmpl = compile_template(source)
        except jinja2.exceptions.TemplateSyntaxError as e:
            raise SystemExit("feature template %s: %s" % (name, e))
        for case_name, messages, gen, extra in FEATURE_CASES:
            case = {"template": name, "name": case_name, "messages": messages,
                    "add_generation_prompt": gen, "extra": extra}
            case.update(render(tmpl, messages, gen, "<s>", "</s>", extra))
            fixtures["cases"].append(case)
    with open(os.path.join(HERE, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(fixtures, f, indent=1, ensure_ascii=False)
        f.write("\n")
    errors = sum(1 for c in fixtures["cases"] if "error" in c)
    print("wrote %d cases (%d raise) for %d templates" % (len(fixtures["cases"]), errors, len(fixtures["templates"])))


if __name__ == "__main__":
    main()
