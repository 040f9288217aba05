#!/usr/bin/env python3
"""Regenerates tests/data/smollm2_tokens.json or tests/data/gemma3_tokens.json: tokenizer
vectors produced by llama.cpp's llama-tokenize (an already-built peer binary, given by path)
on the model's GGUF.

Each text is fed byte-exact on stdin with --no-escape, so backslashes stay literal and
trailing whitespace is kept. llama-tokenize's defaults otherwise apply: special tokens are
parsed (parse_special = true) and BOS is added only if the model asks for it (SmolLM2 does
not; Gemma 3 does, so every Gemma 3 entry starts with BOS = 2).

--texts picks the list: smollm2 (the default, SMOLLM2_TEXTS) or gemma3 (GEMMA3_TEXTS, which
is SMOLLM2_TEXTS followed by Gemma-specific strings).

usage: LLAMA_TOKENIZE=/path/to/llama-tokenize bench/peer_tokens.py [--texts smollm2|gemma3] MODEL.gguf OUT.json
  e.g. bench/peer_tokens.py ~/.cache/longsparse/models/SmolLM2-135M-Instruct.Q4_1.gguf tests/data/smollm2_tokens.json
       bench/peer_tokens.py --texts gemma3 ~/.cache/longsparse/models/gemma-3-270m-Q4_K_M.gguf tests/data/gemma3_tokens.json
"""
import json
import os
import subprocess
import sys

SMOLLM2_TEXTS = [
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
TEXTS = SMOLLM2_TEXTS  # the name older callers used

# Gemma 3 (SentencePiece-style BPE with byte fallback, add_bos_token = true). The SmolLM2
# strings are kept (their <|im_start|> etc. are plain text for Gemma), then Gemma's own cases.
GEMMA3_TEXTS = SMOLLM2_TEXTS + [
    # the empty string: BOS alone
    "",
    # Gemma control tokens (parsed), the IT chat layout and an explicit <bos> on top of the added one
    "<start_of_turn>user\nTest<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\nHi<end_of_turn>\n",
    "<bos>",
    "<eos>",
    "<end_of_turn>",
    "<pad><unk><mask>",
    "<start_of_image><end_of_image>",
    "<start_of_turn without closing and <end_of_turn partial, <bos",
    # whitespace runs (Gemma has tokens for runs of spaces, tabs and newlines)
    "a b  c   d    e     f      g",
    "      ",
    "\n\n\n\n\n",
    "\t\t\t\tfour tabs",
    "    indented by four\n        and by eight\n",
    "\r\n\r\n",
    "end with newline\n",
    # digits (split one by one)
    "12345678901234567890",
    # more scripts, combining marks, flags, keycaps
    "สวัสดีครับ ქართული தமிழ் ελληνικά",
    "e\u0301 vs \u00e9, \u212b vs \u00c5",
    "🇯🇵🇫🇷 1️⃣ ❤️‍🔥 🏳️‍🌈",
    # characters that may need byte fallback: controls, private use, rare planes
    "\x01\x02\x1b[0m\x7f",
    "\ue000\uf8ff \U000f0000 \U0010fffd",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀 𠜎 𐍈",
    # a long German compound
    "Donaudampfschifffahrtsgesellschaftskapitänswitwe",
]
TEXT_SETS = {"smollm2": SMOLLM2_TEXTS, "gemma3": GEMMA3_TEXTS}


def tokenize(binary, model, text):
    out = subprocess.run(
        [binary, "-m", model, "--stdin", "--no-escape", "--ids", "--log-disable"],
        input=text.encode("utf-8"), capture_output=True, check=True)
    line = out.stdout.decode().strip().splitlines()[-1]
    return json.loads(line)


def main():
    binary = os.environ.get("LLAMA_TOKENIZE")
    args = sys.argv[1:]
    texts = SMOLLM2_TEXTS
    if len(args) >= 2 and args[0] == "--texts":
        if args[1] not in TEXT_SETS:
            sys.exit(f"--texts must be one of {', '.join(TEXT_SETS)}")
        texts = TEXT_SETS[args[1]]
        args = args[2:]
    if not binary or len(args) != 2:
        sys.exit(__doc__)
    model, out_path = args
    entries = [{"text": t, "ids": tokenize(binary, model, t)} for t in texts]
    with open(out_path, "w", encoding="utf-8") as f:
        f.write("[\n")
        f.write(",\n".join(json.dumps(e, ensure_ascii=False) for e in entries))
        f.write("\n]\n")
    print(f"{len(entries)} entries -> {out_path}")


if __name__ == "__main__":
    main()
