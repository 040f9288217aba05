#!/usr/bin/env python3
"""Regenerates tests/data/smollm2_tokens.json: tokenizer vectors produced by llama.cpp's
llama-tokenize (an already-built peer binary, given by path) on the SmolLM2 GGUF.

Each text is fed byte-exact on stdin with --no-escape, so backslashes stay literal and
trailing whitespace is kept. llama-tokenize's defaults otherwise apply: special tokens are
parsed (parse_special = true) and BOS is added only if the model asks for it (SmolLM2 does not).

usage: LLAMA_TOKENIZE=/path/to/llama-tokenize bench/peer_tokens.py MODEL.gguf OUT.json
"""
import json
import os
import subprocess
import sys

TEXTS = [
    # MODELS.md §5.1 self-check vectors
    "Hello, we can use",
    "The capital of France is",
    "\n",
    "Café déjà vu.",
    "  multiple   spaces",
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
    "Hello world! 123",
    # digits and numbers
    "The year 2024 had 366 days; pi is 3.14159 and 1,000,000 is a million.",
    "3.14e-10 0x1F 1e6 -42 +7 12:30 007 $19.99 50%",
    # contractions
    "I'm sure they'll say we've done what you'd've done, isn't it? It's John's. I'D SAY HE'S RIGHT",
    # code
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}",
    '{"key": "value", "n": [1, 2, 3], "ok": true, "none": null}',
    # scripts other than Latin
    "你好，世界！今日は良い天気ですね。안녕하세요",
    "مرحبا بالعالم שלום नमस्ते Привет, мир!",
    "ÀÉÎÕÜ àéîõü ñ ß Ω ω Ж ж",
    # emoji, including a skin-tone modifier and a ZWJ sequence
    "I love pizza 🍕🍕 and rockets 🚀! 👍🏽 👨‍👩‍👧",
    # whitespace mixes
    "\t\tTabs\tand\nnewlines\n\n\nmixed \t \n end",
    "trailing spaces   ",
    " ",
    "  leading spaces and\r\nCRLF line endings\r\n",
    "line one\n\nline three\n",
    # special tokens (parsed: llama-tokenize's default)
    "<|im_start|>user\nHi<|im_end|>",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "<repo_name>owner/project<file_sep>src/main.py\nprint('hi')",
    "<|im_start without closing and <|im_end| partial",
    # long words
    "Pneumonoultramicroscopicsilicovolcanoconiosis and antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    # URLs, e-mail
    "See https://www.example.com/path/to/page?query=1&lang=en#section or mailto:user@example.org",
    # punctuation runs
    "Wait... what?!?! --- (really) [yes] {no} <maybe> ***bold*** ~~~ !!!!!!!!!!!!",
    # markdown
    "# Title\n\n- item one\n- item two\n\n**bold** and _italic_ `code`",
    # mixed prose
    "On 4 July 1776, the delegates—tired, hot, and arguing—signed it; 'twas \"history\".",
]


def tokenize(binary, model, text):
    out = subprocess.run(
        [binary, "-m", model, "--stdin", "--no-escape", "--ids", "--log-disable"],
        input=text.encode("utf-8"), capture_output=True, check=True)
    line = out.stdout.decode().strip().splitlines()[-1]
    return json.loads(line)


def main():
    binary = os.environ.get("LLAMA_TOKENIZE")
    if not binary or len(sys.argv) != 3:
        sys.exit(__doc__)
    model, out_path = sys.argv[1], sys.argv[2]
    entries = [{"text": t, "ids": tokenize(binary, model, t)} for t in TEXTS]
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("[\n")
        f.write(",\n".join(json.dumps(e, ensure_ascii=False) for e in entries))
        f.write("\n]\n")
    print(f"{len(entries)} entries -> {out_path}")


if __name__ == "__main__":
    main()
