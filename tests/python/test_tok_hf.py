#!/usr/bin/env python3
"""test_tok_hf.py — ringkv's byte-level BPE against the Hugging Face `tokenizers` package.

usage: test_tok_hf.py TOKENIZE_BIN [N_STRINGS] [SEED]

Tokenizes thousands of random strings (ASCII, whitespace runs, digits, code, accented Latin,
Cyrillic, Greek, CJK, emoji, combining marks, mixtures, some with special tokens) with SmolLM2's
tokenizer.json and with `TOKENIZE_BIN --batch --no-bos -m SmolLM2-135M-Instruct.Q4_1.gguf`
(ringkv tokenize, or the test-tok-cli build of it) and requires identical ids for every string.

Exit 77 (skipped) when the `tokenizers` package or the cached model is missing.
"""
import os
import random
import subprocess
import sys
import unicodedata

SKIP = 77


def random_strings(n, seed):
    rng = random.Random(seed)
    ascii_chars = [chr(c) for c in range(32, 127)]
    ws = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\u00a0", "\u3000", "\u2009", "\x0b", "\x0c"]
    latin = "àáâäãåæçèéêëìíîïñòóôöõøœùúûüýÿßÀÉÖÜÑ"
    cyr = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖ"
    greek = "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔ"
    cjk = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学"
    emoji = ["😀", "🦙", "👍🏽", "❤️", "🇫🇷", "👨‍👩‍👧", "✅", "🚀", "\u200d", "\ufe0f"]
    digits = "0123456789٠١٢٣४५６７"
    marks = ["e\u0301", "a\u0308", "n\u0303", "\u0915\u094d\u0937", "\u0627\u0644\u0639"]
    code = ["def f(x):\n    return x+1\n", "int main(void) { return 0; }", "for (i = 0; i < n; i++) {",
            "    if x == 3:", "a[i] = b->c;", "#include <stdio.h>", "`code`", "$HOME/bin", "x**2 + y**2",
            "{\"key\": [1, 2.5e-3, null]}", "<div class=\"a\">", "http://example.com/?q=1&r=2"]
    words = ["Hello", "world", "the", "The", "don't", "I'm", "we've", "they'll", "it's", "He'd",
             "ABC", "naïve", "café", "résumé", "token", "izer", "SmolLM", "Hugging", "Face"]
    specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>"]

    def piece(kind):
        if kind == 0: return "".join(rng.choice(ascii_chars) for _ in range(rng.randint(1, 12)))
        if kind == 1: return "".join(rng.choice(ws) for _ in range(rng.randint(1, 5)))
        if kind == 2: return "".join(rng.choice(digits[:10] if rng.random() < .8 else digits)
                                     for _ in range(rng.randint(1, 9)))
        if kind == 3: return rng.choice(code)
        if kind == 4: return "".join(rng.choice(latin + "abcdef") for _ in range(rng.randint(1, 8)))
        if kind == 5: return "".join(rng.choice(cyr + greek) for _ in range(rng.randint(1, 8)))
        if kind == 6: return "".join(rng.choice(cjk) for _ in range(rng.randint(1, 6)))
        if kind == 7: return "".join(rng.choice(emoji) for _ in range(rng.randint(1, 3)))
        if kind == 8: return rng.choice(marks)
        if kind == 9: return rng.choice(words)
        if kind == 10: return rng.choice(specials)
        if kind == 11:  # any assigned code point (no surrogates, no NUL)
            out = []
            for _ in range(rng.randint(1, 4)):
                c = rng.randint(1, 0x2FFFF)
                # code points unassigned in Python's (and PCRE2's) Unicode version may be letters
                # in the newer one the Rust `tokenizers` uses: their split legitimately differs
                while unicodedata.category(chr(c)) in ("Cn", "Cs"):
                    c = rng.randint(1, 0x2FFFF)
                out.append(chr(c))
            return "".join(out)
        return "'" + rng.choice(["s", "t", "re", "ve", "m", "ll", "d", "S", "LL"])

    out = []
    for i in range(n):
        k = rng.randint(1, 12)
        s = "".join(piece(rng.choice(range(13)) if rng.random() < .9 else 9) +
                    (" " if rng.random() < .5 else "") for _ in range(k))
        if i % 7 == 0:
            s = " " + s
        if i % 11 == 0:
            s = s.rstrip()
        out.append(s)
    out += ["", " ", "\n", "   \n\n  x", "1234567890", "Hello world!", "a" * 300, " " * 50 + "b"]
    return out


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1234
    try:
        import tokenizers
    except ImportError:
        print("the `tokenizers` package is not installed: skipped")
        return SKIP
    data = os.environ.get("RINGKV_TESTDATA", os.path.join(os.path.dirname(__file__), "../../../shared/testdata"))
    models = os.environ.get("RINGKV_MODELS", os.path.join(os.path.dirname(__file__), "../../models"))
    model = os.path.join(models, "SmolLM2-135M-Instruct.Q4_1.gguf")
    tj = os.path.join(data, "tokenizer/smollm2-135m-instruct/tokenizer.json")
    if not os.path.exists(model):
        print(f"{model} is not cached: skipped")
        return SKIP
    hf = tokenizers.Tokenizer.from_file(tj)
    strings = random_strings(n, seed)
    payload = b"\0".join(s.encode("utf-8") for s in strings)
    proc = subprocess.run([binary, "-m", model, "--no-bos", "--batch"], input=payload,
                          capture_output=True, timeout=600)
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace")
        print("tokenize failed:", msg)
        return SKIP if "need PCRE2" in msg else 1
    lines = proc.stdout.decode().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # the batch format cannot express a trailing empty string after the last NUL
    if len(lines) != len(strings):
        print(f"got {len(lines)} lines for {len(strings)} strings")
        return 1
    bad = 0
    for s, line in zip(strings, lines):
        ours = [int(x) for x in line.split()]
        ref = hf.encode(s, add_special_tokens=False).ids
        if ours != ref:
            bad += 1
            if bad <= 10:
                print(f"MISMATCH {s!r}\n  hf:     {ref}\n  ringkv: {ours}")
    print(f"test_tok_hf: {len(strings) - bad}/{len(strings)} strings agree with tokenizers "
          f"{tokenizers.__version__} (seed {seed})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
