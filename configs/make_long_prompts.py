#!/usr/bin/env python3
"""Builds configs/prompts_long.jsonl: long prompts of about 128, 512, 1024, 2048 and 4096 tokens.

Each prompt is an instruction followed by the beginning of a free-software license text as Debian
ships it (/usr/share/common-licenses, package base-files; verbatim copies may be redistributed),
cut at a line boundary (or, where no line boundary comes within 2 % of the target, at a word
boundary). Its length is measured with `hat tokens` on the model's own tokenizer, as the whole
rendered chat prompt (the template's default system message, the user turn, the assistant
header: what a device prefills with [devices] chat = on), and the cut is binary-searched until
that count is within 3 % of the target (in practice a few tokens off).

Each line of the output is a JSON object: prompt, source, target_tokens, tokens (the measured
chat-rendered count). Standard library only; needs a built `hat` and the model.

usage: configs/make_long_prompts.py [--hat build/hat] [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                    [--licenses /usr/share/common-licenses] [--out configs/prompts_long.jsonl]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTRUCTION = "Summarise the following text:\n\n"
TOLERANCE = 0.03       # the measured count is within this fraction of the target
LINE_TOLERANCE = 0.02  # a line boundary is kept when it comes this close, else the cut moves to a word
# target tokens -> (file under the licenses folder, its name); each text is long enough for its target
TARGETS = [
    (128, "Apache-2.0", "Apache-2.0"),
    (512, "MPL-2.0", "MPL-2.0"),
    (1024, "GFDL-1.3", "GFDL-1.3"),
    (2048, "GPL-2", "GPL-2.0"),
    (4096, "GPL-3", "GPL-3.0"),
]


def count_tokens(hat, model, prompts):
    """chat-rendered token counts of prompts, from `hat tokens` (one call for the whole list)"""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for p in prompts:
            f.write(json.dumps({"prompt": p}, ensure_ascii=False) + "\n")
        path = f.name
    try:
        p = subprocess.run([hat, "tokens", "--model", model, "--prompts", path], capture_output=True, text=True)
    finally:
        os.remove(path)
    if p.returncode != 0:
        sys.exit(f"make_long_prompts: hat tokens failed: {p.stderr.strip()}")
    rows = [line.split("\t") for line in p.stdout.splitlines() if line and not line.startswith("#")]
    return [int(r[2]) for r in rows]


def best_cut(cuts, text, target, measure):
    """the cut (an index into text) among cuts whose prompt comes closest to target tokens:
    binary search for the last cut at or under the target, then that cut or the next"""
    lo, hi = 0, len(cuts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if measure(INSTRUCTION + text[:cuts[mid]]) <= target:
            lo = mid
        else:
            hi = mid - 1
    pair = cuts[lo:lo + 2]
    counts = [measure(INSTRUCTION + text[:c]) for c in pair]
    i = min(range(len(pair)), key=lambda k: abs(counts[k] - target))
    return pair[i], counts[i]


def build(hat, model, text, target):
    """(prompt, tokens) for one target: a line-boundary cut, else a word-boundary one"""
    cache = {}

    def measure(p):
        if p not in cache:
            cache[p] = count_tokens(hat, model, [p])[0]
        return cache[p]

    text = text.replace("\f", "")
    lines = [m.start() for m in re.finditer(r"\n", text)] + [len(text)]
    lines = [c for c in lines if text[:c].strip()]
    cut, n = best_cut(lines, text, target, measure)
    if abs(n - target) > LINE_TOLERANCE * target:
        words = [m.end() for m in re.finditer(r"\S+", text)]
        cut, n = best_cut(words, text, target, measure)
    prompt = INSTRUCTION + text[:cut].rstrip()
    n = measure(prompt)
    if abs(n - target) > TOLERANCE * target:
        sys.exit(f"make_long_prompts: no cut within {TOLERANCE:.0%} of {target} tokens (best {n})")
    return prompt, n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hat", default=os.path.join(ROOT, "build", "hat"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--licenses", default="/usr/share/common-licenses")
    ap.add_argument("--out", default=os.path.join(ROOT, "configs", "prompts_long.jsonl"))
    a = ap.parse_args()
    out = []
    for target, file, name in TARGETS:
        path = os.path.join(a.licenses, file)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        prompt, n = build(a.hat, a.model, text, target)
        source = f"{name} text, /usr/share/common-licenses/{file} (Debian base-files), its beginning"
        out.append({"prompt": prompt, "source": source, "target_tokens": target, "tokens": n})
        print(f"{target:5d} tokens wanted, {n:5d} measured ({(n - target) / target:+.1%}): {name}, "
              f"{len(prompt)} bytes")
    check = count_tokens(a.hat, a.model, [o["prompt"] for o in out])
    assert check == [o["tokens"] for o in out], "counts changed between calls"
    with open(a.out, "w", encoding="utf-8") as f:
        for o in out:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
    print(f"wrote {a.out}: {len(out)} prompts")


if __name__ == "__main__":
    main()
