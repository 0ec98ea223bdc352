#!/usr/bin/env python3
"""Writes ../corpus.jsonl: the tokenizer parity corpus (one JSON string per line).

Deterministic: the same script always writes the same file (fixed seed, no
dependence on the environment). Run from anywhere: python3 make_corpus.py
"""
import json
import os
import random

rng = random.Random(20261123)
entries = []


def add(*texts):
    entries.extend(texts)


# --- English prose --------------------------------------------------------
subjects = ["The cat", "A little girl named Lily", "Tom", "The old man", "Our team", "She", "He",
            "The dog", "Everyone", "Nobody", "The robot", "My friend", "The teacher", "A bird"]
verbs = ["wanted to play", "looked at", "ran to", "was happy with", "didn't like", "couldn't find",
         "smiled at", "jumped over", "found", "shared", "built", "painted", "forgot", "remembered"]
objects = ["the big red ball", "a shiny stone", "the park", "her mom", "the tall tree", "a small box",
           "the river", "some cookies", "the blue sky", "an old map", "the garden", "a funny hat"]
tails = [".", "!", "?", ", and then it rained.", " because it was fun.", "... maybe.",
         " - or so they said.", "; it's true.", " (again).", ": \"Wow!\""]
for _ in range(500):
    s = " ".join([rng.choice(subjects), rng.choice(verbs), rng.choice(objects)]) + rng.choice(tails)
    if rng.random() < 0.3:
        s += " " + rng.choice(subjects) + " " + rng.choice(verbs) + " " + rng.choice(objects) + "."
    if rng.random() < 0.1:
        s = s.upper()
    add(s)

add("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    "I'm sure you'll see they've said we'd go, but it's not what I'd've done.",
    "I'M SURE YOU'LL SEE THEY'VE SAID WE'D GO, BUT IT'S NOT WHAT I'D'VE DONE.",
    "Don't, won't, can't, shan't, y'all, o'clock, rock'n'roll, 'quoted', 'Single quotes'.",
    "It\u2019s a curly apostrophe \u2018quoted\u2019 and \u201cdouble\u201d.",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG",
    "Mr. Smith, Dr. Jones & Co. (est. 1999) - e.g., i.e., etc.",
    "Hello,world!How are you?I'm fine.Thanks!!!",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'VE 'M 'LL 'D 'x '",
    "The \u017fhort s: it'\u017f old, and 'K is a Kelvin sign \u212a.")

# --- Other languages and scripts -------------------------------------------
add("今天天气很好，我们去公园散步吧。",
    "我喜欢学习人工智能和机器学习，尤其是自然语言处理。",
    "東京は日本の首都です。ひらがな、カタカナ、漢字を使います。",
    "今日はいい天気ですね！ラーメンを食べに行きましょう。",
    "안녕하세요. 저는 학생입니다. 한국어를 공부하고 있어요.",
    "서울특별시는 대한민국의 수도이다.",
    "مرحبا بالعالم! كيف حالك اليوم؟",
    "اللغة العربية جميلة جداً، وهي لغة القرآن الكريم.",
    "שלום עולם! מה שלומך היום?",
    "עברית נכתבת מימין לשמאל.",
    "नमस्ते दुनिया! आप कैसे हैं?",
    "हिन्दी भारत की राजभाषा है। संस्कृत एक प्राचीन भाषा है।",
    "Привет, мир! Как дела? Я изучаю русский язык.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "สวัสดีครับ ยินดีที่ได้รู้จัก ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
    "Γειά σου κόσμε! Η ελληνική γλώσσα είναι πολύ παλιά.",
    "Tiếng Việt có nhiều dấu: à á ả ã ạ ă ằ ắ ẳ ẵ ặ â ầ ấ ẩ ẫ ậ đ.",
    "Türkçe: Işık, ılık, iğne, ÇĞİÖŞÜ çğıöşü.",
    "Deutsch: Größe, Straße, Übermäßig, ÄÖÜß — „Anführungszeichen“.",
    "Français : « Ça va ? » Où est l'hôtel ? C'était très bien, n'est-ce pas ?",
    "Español: ¿Cómo estás? ¡Muy bien! El niño comió piñata.",
    "Polski: Zażółć gęślą jaźń. Łódź, Kraków, Wrocław.",
    "বাংলা ভাষা আমার মাতৃভাষা।",
    "தமிழ் ஒரு பழமையான மொழி.",
    "ქართული ენა ძალიან ლამაზია.",
    "Հայերեն լեզուն շատ հին է։",
    "አማርኛ የኢትዮጵያ ቋንቋ ነው።",
    "ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ ᠤᠯᠠᠭᠠᠨᠪᠠᠭᠠᠲᠤᠷ",
    "ພາສາລາວ ແລະ ភាសាខ្មែរ ແລະ မြန်မာဘာသာ",
    "Ελληνικά, Кириллица, עברית, العربية, देवनागरी, ไทย, 한글, 漢字, かな in one line.",
    "Mixed direction: The word שלום means peace, and مرحبا means hello (123 ١٢٣).",
    "\u202eReversed with RLO\u202c and \u200fRLM\u200e LRM marks.",
    "Zero\u200bwidth\u200cnon\u200djoiner\u2060word joiner\ufeffBOM inside.")
scripts = [(0x4E00, 0x9FFF), (0x3040, 0x30FF), (0xAC00, 0xD7A3), (0x0600, 0x06FF), (0x05D0, 0x05EA),
           (0x0900, 0x097F), (0x0400, 0x04FF), (0x0E00, 0x0E7F), (0x0370, 0x03FF), (0x00C0, 0x024F),
           (0x1F300, 0x1F64F), (0x2200, 0x22FF), (0x2190, 0x21FF), (0x0980, 0x09FF), (0x10A0, 0x10FF)]
for _ in range(300):
    lo, hi = rng.choice(scripts)
    n = rng.randint(1, 30)
    chars = []
    for _ in range(n):
        r = rng.random()
        if r < 0.15:
            chars.append(" ")
        elif r < 0.2:
            chars.append(rng.choice([",", ".", "!", "?", "\n", "  ", "\t", "'s", "1", "23"]))
        else:
            chars.append(chr(rng.randint(lo, hi)))
    add("".join(chars))

# --- Emoji --------------------------------------------------------------
add("I love it 😀😃😄😁 so much!!! 🎉🎉🎉",
    "Family: 👨‍👩‍👧‍👦 couple: 👩‍❤️‍👨 technologist: 🧑🏽‍💻 rainbow flag: 🏳️‍🌈 pirate: 🏴‍☠️",
    "Flags: 🇯🇵 🇺🇸 🇫🇷 🇩🇪 🇧🇷 🇮🇳 🇨🇳 🇰🇷 🇬🇧🇺🇦",
    "Skin tones: 👍 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿 wave 👋🏽",
    "Keycaps: 1️⃣ 2️⃣ #️⃣ *️⃣ and text/emoji: ☺ ☺️ ❤ ❤️ ✔ ✔️",
    "England 🏴󠁧󠁢󠁥󠁮󠁧󠁿 Scotland 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
    "🙂🙃😉😊😇🥰😍🤩😘😗☺😚😙🥲😋😛😜🤪😝🤑🤗🤭🫢🫣🤫🤔🫡",
    "emoji-only:🔥", "🤖", "👩🏾‍🚀👨🏻‍🔬🧑‍🤝‍🧑")
emoji = ["😀", "👨‍👩‍👧‍👦", "🇯🇵", "👍🏽", "❤️", "🏳️‍🌈", "🚀", "✨", "🐍", "🍕"]
for _ in range(60):
    add(" ".join(rng.choice(emoji) + rng.choice(["", "", "!", " wow", "x"]) for _ in range(rng.randint(1, 8))))

# --- Code -----------------------------------------------------------------
add('def fib(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n',
    'package main\n\nimport "fmt"\n\nfunc main() {\n\tfor i := 0; i < 10; i++ {\n\t\tfmt.Println(i)\n\t}\n}\n',
    'function add(a, b) {\n  return a + b; // sum\n}\nconst x = [1, 2, 3].map((v) => v * 2);\nconsole.log(`x=${x}`);',
    'fn main() {\n    let v: Vec<i32> = (0..10).filter(|x| x % 2 == 0).collect();\n    println!("{:?}", v);\n}',
    '#include <stdio.h>\nint main(void) {\n\tprintf("Hello, %s!\\n", "world");\n\treturn 0;\n}',
    'SELECT id, name FROM users WHERE age >= 18 AND name LIKE \'%son\' ORDER BY id DESC;',
    '<!DOCTYPE html>\n<html>\n  <head><title>Test</title></head>\n  <body class="main">&nbsp;&amp;</body>\n</html>',
    '{"key": "value", "list": [1, 2.5, -3e10, true, null], "nested": {"a": "\\u00e9"}}',
    '#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do\n  echo "$f" | tr a-z A-Z >> out.log 2>&1\ndone',
    'x = {k: v for k, v in zip(keys, values) if v is not None}  # dict comprehension',
    '    indented with four spaces\n\tindented with a tab\n  \t mixed\n',
    'if (a != b && c <= d || e >= f) { x += 1; y -= 2; z *= 3; w /= 4; }',
    'public static void main(String[] args) { System.out.println("Hi"); }',
    'let re = /^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$/i;',
    '```python\nprint("hello")\n```\n',
    '    \n    \n\n        return None\n\n\n')
idents = ["foo", "bar_baz", "camelCase", "snake_case_name", "HTTPServer", "x1", "__init__", "self", "i", "tmp2"]
ops = [" = ", " == ", " += ", "(", ")", "[", "]", ".", ", ", " -> ", "::", ";", " { ", " }", "\n", "\n    ", "\n\t"]
for _ in range(150):
    s = "".join(rng.choice(idents) + rng.choice(ops) for _ in range(rng.randint(2, 15)))
    add(s)

# --- Numbers --------------------------------------------------------------
for n in range(1, 41):
    add("".join(str(rng.randint(0, 9)) for _ in range(n)))
for _ in range(100):
    form = rng.randint(0, 6)
    v = rng.randint(0, 10 ** rng.randint(1, 12))
    if form == 0:
        add(str(v))
    elif form == 1:
        add(f"{v:,}")
    elif form == 2:
        add(f"{rng.random() * 10 ** rng.randint(0, 6):.{rng.randint(1, 6)}f}")
    elif form == 3:
        add(f"-{v} and +{v % 1000} = {v - v % 1000}")
    elif form == 4:
        add(f"Call 555-{v % 10000:04d} or +1 ({v % 1000:03d}) {v % 10000000:07d}.")
    elif form == 5:
        add(f"{v % 13}/{v % 28 + 1}/{1900 + v % 200} {v % 24}:{v % 60:02d}:{v % 60:02d}")
    else:
        add(f"{v}e-{v % 20} 0x{v:x} 0b{v % 256:b} 0o{v % 512:o}")
add("Arabic-Indic ٠١٢٣٤٥٦٧٨٩, Devanagari ०१२३४५६७८९, fullwidth １２３４５, Thai ๑๒๓",
    "Superscripts x² y³ z¹⁰, fractions ½ ¼ ¾ ⅓, Roman Ⅻ ⅻ, circled ① ② ③",
    "3.14159265358979323846264338327950288419716939937510",
    "1 12 123 1234 12345 123456 1234567 12345678 123456789 1234567890",
    "$1,234.56 €99,99 ¥1000 £5 ₹250 ₿0.001 100% 50‰")

# --- Whitespace -------------------------------------------------------------
for n in range(1, 21):
    add("a" + " " * n + "b")
    add(" " * n)
for n in range(1, 9):
    add("x" + "\t" * n + "y")
    add("\n" * n)
    add("line" + "\r\n" * n + "next")
add(" leading space", "  two leading spaces", "trailing space ", "trailing spaces   ",
    "\tleading tab", "trailing tab\t", "\n\nleading newlines", "trailing newlines\n\n",
    " \t \n \r\n mixed \t\t  \n", "a\rb\rc", "a\u00a0b\u00a0\u00a0c (nbsp)", "ideographic\u3000space\u3000\u3000here",
    "thin\u2009space and en\u2002space and em\u2003space", "next line\u0085NEL char", "line\u2028separator\u2029paragraph",
    "vertical\x0btab and form\x0cfeed", "BOM\ufeff in the middle", "\ufeffBOM at start",
    "  \u00a0  \u3000 mixed unicode spaces \u2009\u200a ", "word \u00a0word", "\u00a0leading nbsp",
    "ends with nbsp\u00a0", "a \u3000b", "x\u0085\u0085y", "   \n   \n   ", "\n \n \n", "\r\n\r\n\r\n",
    "\r", "\n", "\t", " ", "")
ws = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n", "\t\t", "    "]
for _ in range(100):
    add("".join(rng.choice(ws) + rng.choice(["word", "x", "Hello", "42", "(", "é", "日本", ""]) for _ in range(rng.randint(1, 10))))

# --- Special-token strings inside text ------------------------------------------
specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<start_of_turn>", "<end_of_turn>", "<bos>",
            "<eos>", "<pad>", "<unk>", "<mask>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
            "<|start_header_id|>", "<|end_header_id|>", "<think>", "</think>", "<tool_call>", "</tool_call>",
            "<|fim_prefix|>", "<unused0>", "<unused99>", "<s>", "</s>", "[multimodal]", "<start_of_image>",
            "<|reserved_special_token_5|>", "<|repo_name|>"]
add("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>",
    "<think>\nLet me think.\n</think>\n\nThe answer is 42.",
    "partial: <|im_start <|im_start| <|im_end|x <start_of_turn <bos <|endoftext|>>",
    "<|im_start|><|im_start|><|im_end|><|im_end|>", "text<|endoftext|>text", " <|endoftext|> ",
    "<|endoftext|>", "<bos>", "<start_of_turn>", "<|begin_of_text|>", "<|im_start|>",
    "html <b>bold</b> <i>it</i> <br/> <div class=\"x\"></div> <s>strike</s>",
    "Gemma spaces▁▁as▁written and tabs\t\t\t\tand\n\n\n\nnewlines",
    "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n",
    "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t",
    "▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁")
for _ in range(120):
    parts = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(specials))
        elif r < 0.6:
            parts.append(rng.choice([" ", "\n", "  ", "", "\t"]))
        else:
            parts.append(rng.choice(["hello", " world", "user", "model", "x=1", "日本", "😀", " 's"]))
    add("".join(parts))

# --- Long words, URLs, math -----------------------------------------------------
add("a" * 500, "ab" * 300, "Supercalifragilisticexpialidocious" * 10,
    "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
    "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(800)),
    "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") for _ in range(600)),
    "-" * 200, "=" * 120, "." * 99, "!" * 50 + "?" * 50, "日" * 300, "😀" * 100, "\u0301" * 40,
    "https://www.example.com/path/to/page?query=1&lang=en#section-2",
    "http://user:pass@192.168.0.1:8080/a/b/c.html",
    "ftp://files.example.org/pub/file_v1.2.3.tar.gz",
    "mailto:someone@example.co.uk and another.person+tag@sub.domain.io",
    "/usr/local/bin/python3 C:\\Users\\Name\\Documents\\file.txt ~/.config/app/settings.json",
    "E = mc^2, a^2 + b^2 = c^2, ∑_{i=1}^{n} i = n(n+1)/2, ∫_0^∞ e^{-x} dx = 1",
    "\\frac{\\partial L}{\\partial \\theta} = \\sum_i \\nabla_\\theta \\log p(x_i)",
    "∀x∈ℝ: x² ≥ 0; ∃y: y ≠ 0 ⇒ 1/y ∈ ℝ; α β γ δ ε ∞ ≈ ≤ ≥ ± × ÷ √ ∂ ∇",
    "f(x) = 3x^3 - 2x + 1; f'(x) = 9x^2 - 2",
    "Combining: e\u0301 vs \u00e9, A\u030a vs \u00c5 vs \u212b, n\u0303 vs \u00f1",
    "Ligatures: \ufb01nd \ufb02ow \ufb00 o\ufb03ce; fullwidth: \uff28\uff45\uff4c\uff4c\uff4f; compat: \u2460 \u3392 \u00bd",
    "Hangul jamo: \u1100\u1161\u11a8 vs \uac01; half-width kana: \uff76\uff9e\uff85",
    "Private use \ue000\uf8ff and unassigned-ish \U000e0001 tag char",
    "Replacement char \ufffd and noncharacter \ufdd0",
    "Control chars: \x01\x02\x1b[31mred\x1b[0m\x7f")

# --- Multi-line documents -------------------------------------------------------
paragraphs = [e for e in entries if "\n" not in e and 20 < len(e) < 200]
for _ in range(150):
    k = rng.randint(2, 6)
    seps = ["\n", "\n\n", "\r\n", " \n", "\n  ", "\n\t", "  \n\n  "]
    doc = ""
    for i in range(k):
        if i:
            doc += rng.choice(seps)
        doc += rng.choice(paragraphs)
    if rng.random() < 0.3:
        doc = rng.choice(["  ", "\n", "\t", " "]) + doc
    if rng.random() < 0.3:
        doc += rng.choice(["  ", "\n", "\t", " ", "\n\n"])
    add(doc)

# --- Random mixtures --------------------------------------------------------
pool = [e for e in entries if len(e) < 120]
for _ in range(300):
    add("".join(rng.choice(pool)[: rng.randint(0, 40)] for _ in range(rng.randint(1, 4))))

# --- Character-class mixtures ------------------------------------------------
# Short random strings from pieces that sit on the boundaries of the
# pre-tokenizer regexes (Unicode spaces, contractions, numbers of other
# scripts, marks, special-token strings...). A separate generator keeps the
# entries above unchanged when this section changes.
mix_rng = random.Random(7)
mix = [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u0085", "\u2009", "\ufeff", "\u200b", "a", "Z",
       "\u00e9", "e\u0301", "\u65e5", "\u672c", "\u00df", "1", "23", "456", "\u0663", "\u00bd", "\u00b2", "'", "'s", "'S", "'ll",
       "'LL", "'re", "'d", "'x", ".", "!!", "(", "\U0001f600", "\U0001f468\u200d\U0001f469\u200d\U0001f467",
       "\U0001f1ef\U0001f1f5", "\u0301", "-", "_", "x", "abc", "Hello", "WORLD", "don't", "<|im_start|>", "<|endoftext|>",
       "<start_of_turn>", "<bos>", "<|begin_of_text|>", "<think>", "<", ">", "|", "\u2581", "\u2581\u2581", "\n\n", "\t\t",
       "\ufb01", "\u00c5", "\uac00", "\uac01", "\u1100\u1161", "\u0e01", "\u0627", "\u05dc", "\u0915", "\u094d", "\u093f",
       "\u0416", "\u0451", "\u0130", "\u017f", "\u212a", "0x1F", "3.14", "1,000", "$", "\u20ac", "\u2192", "\u2211", "<0x41>",
       "\x7f", "\U0010ffff", "\ue000", "\ud7ff", "\uff83", "\uff71", "\u216b", "\u2460"]
for _ in range(1000):
    s = "".join(mix_rng.choice(mix) for _ in range(mix_rng.randint(1, 15)))
    if mix_rng.random() < 0.2:
        # Only blocks whose assignments have not changed since Unicode 15.0:
        # characters added later are letters for a newer Unicode table (the
        # JS reference) and unassigned for Go and Oniguruma (see PARITY.md).
        lo, hi = mix_rng.choice([(0x20, 0x7e), (0xa0, 0x24f), (0x400, 0x4ff), (0x2200, 0x22ff), (0x3041, 0x3096),
                                 (0x4e00, 0x9fa5), (0xac00, 0xd7a3), (0xe000, 0xf8ff), (0x1f600, 0x1f64f)])
        s += "".join(chr(mix_rng.randint(lo, hi)) for _ in range(mix_rng.randint(1, 10)))
    add(s)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus.jsonl")
with open(out, "w", encoding="utf-8", newline="\n") as f:
    for e in entries:
        f.write(json.dumps(e, ensure_ascii=False) + "\n")
print(f"wrote {len(entries)} entries to {os.path.normpath(out)}")
