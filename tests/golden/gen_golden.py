#!/usr/bin/env python3
"""Regenerate ALL engine golden data in tests/golden/ from llama.cpp (via llama-cpp-python) only.

Outputs (relative to this directory):
  generate.tsv        greedy continuations (48 tokens, or fewer when an end-of-generation
                      token is produced) for a fixed set of prompts
  logits.tsv          index of the full-vocabulary fp32 logit dumps
  logits/*.f32        raw little-endian float32 logits, n_vocab values each
  MANIFEST.md         versions, settings, model hash, margins, excerpts, how to regenerate

Run from the repository root:
  .venv/bin/python tests/golden/gen_golden.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]

Nothing here comes from our own engine or tokenizer: token ids, logits and continuations are all
llama.cpp's.  The settings match the engine's numerics: flash attention DISABLED (so llama.cpp
takes the path with an f16 KV cache and the softmax probabilities rounded to f16 before the
product with V), f16 K and V caches, 2 threads, one batch of <= 512 tokens for every prompt.
"""
import argparse
import datetime
import hashlib
import os
import platform
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
EXPECTED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

# ---- settings (all recorded in MANIFEST.md) -----------------------------------------------------
SETTINGS = dict(
    n_ctx=2048,
    n_batch=512,
    n_ubatch=512,
    n_threads=2,
    n_threads_batch=2,
    flash_attn=False,           # -> context_params.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED
    type_k=1,                   # GGML_TYPE_F16 (also llama.cpp's default)
    type_v=1,                   # GGML_TYPE_F16
    n_gpu_layers=0,
    seed=1234,
    verbose=False,
)
N_GEN = 48            # greedy continuation length
N_DECODE_LOGITS = 8   # decode-step logits dumped after this many generated tokens were fed

# ---- prompts ------------------------------------------------------------------------------------
LONG_PROMPT = (
    "The harbour town of Westmere had been built, as far as anyone could tell, on the assumption "
    "that the sea would always be polite. Its houses stood shoulder to shoulder along a single "
    "curved street, their painted doors facing the water, and for nearly two hundred years the "
    "tides had come and gone without complaint. Fishermen left at dawn and returned by noon; the "
    "baker opened at six and closed when the bread ran out; the lighthouse keeper, a patient man "
    "named Tobias Hale, wrote the weather in a ledger every evening and had never once found "
    "anything in it worth underlining.\n\n"
    "That changed in the autumn of 1887, when a storm arrived from the south-west with almost no "
    "warning. The barometer in the harbour master's office fell so quickly that his assistant "
    "tapped the glass twice, convinced it was broken. By late afternoon the wind had torn the "
    "shutters from the customs house and the waves were breaking over the outer wall, throwing "
    "spray as high as the church roof. Most of the boats had come in early, but three had not, "
    "and their families gathered at the end of the pier with lanterns, watching a horizon that "
    "had disappeared behind the rain.\n\n"
    "Hale climbed the lighthouse stairs more times that night than he would later be able to "
    "count. The lamp had to be trimmed, the glass wiped clean of salt, and the clockwork that "
    "turned the lens wound every two hours by hand. Between those tasks he stood at the window "
    "with a brass telescope, searching for the small red light that each fishing boat carried at "
    "its mast. Shortly after midnight he saw one, then a second, low in the water and moving "
    "slowly towards the harbour mouth. He rang the bell to tell the town, and the people on the "
    "pier began to shout, although nobody on the boats could possibly have heard them.\n\n"
    "The third boat, the Margaret Ellen, did not come home that night, nor the next morning. "
    "Its crew of four were found two days later on a sandbank eleven miles up the coast, cold, "
    "hungry and entirely unharmed, having sheltered in the wreck of their own hull. In the ledger "
    "for that week, Tobias Hale wrote a single sentence and, for the first time in his life,"
)

PROMPTS = [
    # name, text, is_chat
    ("short_fact", "Q: What is the capital of France?\nA:", 0),
    ("story", "Once upon a time, in a small village at the edge of a great forest, there lived", 0),
    ("list", "Here is a list of the planets in our solar system, in order from the Sun:\n1.", 0),
    ("code", "def fibonacci(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", 0),
    ("math", "Question: A train travels 120 km in 2 hours, then 180 km in 3 hours. "
             "What is its average speed for the whole trip?\nAnswer:", 0),
    ("french", "La Tour Eiffel est un monument situé à Paris. Elle a été construite pour "
               "l'Exposition universelle de 1889 et elle", 0),
    ("long", LONG_PROMPT, 0),
    ("chat", "Give me three tips for staying focused while studying.", 1),
]
# prompts whose full logit vectors are dumped
LOGIT_PROMPTS = ["short_fact", "code", "long"]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def render_chat(template, user_text):
    """Render the GGUF's tokenizer.chat_template the way HF transformers does."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(
        messages=[{"role": "user", "content": user_text}], add_generation_prompt=True)


def make_llm(model, logits_all):
    llm = Llama(model_path=model, logits_all=logits_all, **SETTINGS)
    cp = llm.context_params
    assert cp.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED, cp.flash_attn_type
    assert cp.type_k == 1 and cp.type_v == 1, (cp.type_k, cp.type_v)
    assert cp.n_threads == SETTINGS["n_threads"] and cp.n_threads_batch == SETTINGS["n_threads_batch"]
    assert cp.n_batch == SETTINGS["n_batch"] and cp.n_ubatch == SETTINGS["n_ubatch"]
    assert llm.n_ctx() == SETTINGS["n_ctx"]
    return llm


def probe_context_log(model):
    """Build one throw-away context with verbose=True, capture llama.cpp's own log (it goes through
    llama-cpp-python's log callback to sys.stderr) and check that llama.cpp itself reports the
    settings we rely on: flash attention disabled, f16 K and V caches, n_ctx, n_ubatch."""
    import contextlib
    import io
    import re
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        probe = Llama(model_path=model, **dict(SETTINGS, verbose=True))
        probe.close()
    log = buf.getvalue()
    checks = {
        "flash_attn = disabled": re.search(r"flash_attn\s*=\s*disabled", log),
        "K (f16)": re.search(r"K \(f16\)", log),
        "V (f16)": re.search(r"V \(f16\)", log),
        f"n_ctx = {SETTINGS['n_ctx']}": re.search(rf"n_ctx\s*=\s*{SETTINGS['n_ctx']}\b", log),
        f"n_ubatch = {SETTINGS['n_ubatch']}": re.search(rf"n_ubatch\s*=\s*{SETTINGS['n_ubatch']}\b", log),
    }
    missing = [k for k, v in checks.items() if not v]
    if missing:
        sys.exit("llama.cpp log does not confirm: " + ", ".join(missing))
    keep = [ln.strip() for ln in log.splitlines()
            if re.search(r"flash_attn\s*=|llama_kv_cache: size|CPU_REPACK|n_ubatch\s*=|n_ctx\s*=", ln)]
    return keep


def last_logits(llm):
    """fp32 logits of the last token of the latest decode (works without logits_all)."""
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float32, copy=True)


def top2_margin(x):
    i1 = int(np.argmax(x))
    y = x.copy()
    y[i1] = -np.inf
    return float(x[i1] - y.max()), i1


def greedy(llm, ids, n_gen, eog, dump_after=None):
    """Prompt in one eval(), then argmax + single-token eval().  Returns (continuation,
    margins, stopped_at_eog, decode_logits) where decode_logits are the logits produced by the
    single-token eval of the dump_after-th generated token (position len(ids)+dump_after-1)."""
    llm.reset()
    llm.eval(ids)
    logits = last_logits(llm)
    out, margins, stopped, dumped = [], [], False, None
    for step in range(n_gen):
        m, tok = top2_margin(logits)
        margins.append(m)
        out.append(tok)
        if tok in eog:
            stopped = True
            break
        if step == n_gen - 1:
            break
        llm.eval([tok])
        logits = last_logits(llm)
        if dump_after is not None and len(out) == dump_after:
            dumped = logits.copy()
    return out, margins, stopped, dumped


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=HERE, help="output directory (default: this directory)")
    args = ap.parse_args()

    model = os.path.abspath(args.model)
    sha = sha256_file(model)
    if sha != EXPECTED_SHA256:
        print(f"warning: model sha256 {sha} differs from expected {EXPECTED_SHA256}", file=sys.stderr)
    out_dir = os.path.abspath(args.out)
    logit_dir = os.path.join(out_dir, "logits")
    os.makedirs(logit_dir, exist_ok=True)

    ctx_log = probe_context_log(model)
    llm = make_llm(model, logits_all=False)
    n_vocab = llm.n_vocab()
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    eog = sorted(i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i))
    template = llm.metadata["tokenizer.chat_template"]

    # ---- tokenize ---------------------------------------------------------------------------
    items = []
    for name, text, is_chat in PROMPTS:
        if is_chat:
            text = render_chat(template, text)
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=bool(is_chat))
        assert len(ids) + N_GEN <= SETTINGS["n_ctx"] and len(ids) <= SETTINGS["n_batch"]
        items.append(dict(name=name, text=text, is_chat=is_chat, ids=ids))
    long_item = next(it for it in items if it["name"] == "long")
    assert len(long_item["ids"]) >= 300, len(long_item["ids"])

    # ---- greedy continuations ---------------------------------------------------------------
    for it in items:
        dump = N_DECODE_LOGITS if it["name"] in LOGIT_PROMPTS else None
        cont, margins, stopped, dec = greedy(llm, it["ids"], N_GEN, set(eog), dump)
        it.update(cont=cont, margins=margins, stopped=stopped, dec_logits=dec)
        print(f"{it['name']:>10}: {len(it['ids'])} prompt tokens, {len(cont)} generated"
              f"{' (stopped at EOG ' + str(cont[-1]) + ')' if stopped else ''},"
              f" min margin {min(margins):.4f} at step {int(np.argmin(margins))}")

    # last-prompt logits from this (non-logits_all) instance, for the cross-check below
    last_plain = {}
    for it in items:
        if it["name"] in LOGIT_PROMPTS:
            llm.reset()
            llm.eval(it["ids"])
            last_plain[it["name"]] = last_logits(llm)
    del llm

    # ---- prompt-position logits (separate logits_all instance) ------------------------------
    llm_all = make_llm(model, logits_all=True)
    logit_rows = []
    total_bytes = 0
    crosscheck = {}
    for it in items:
        if it["name"] not in LOGIT_PROMPTS:
            continue
        ids = it["ids"]
        n = len(ids)
        llm_all.reset()
        llm_all.eval(ids)
        scores = np.array(llm_all.scores[:n, :], dtype=np.float32, copy=True)
        crosscheck[it["name"]] = float(np.max(np.abs(scores[n - 1] - last_plain[it["name"]])))
        dumps = [(0, scores[0]), (n // 2, scores[n // 2]), (n - 1, scores[n - 1])]
        if it["dec_logits"] is not None:
            dumps.append((n + N_DECODE_LOGITS - 1, it["dec_logits"]))
        all_ids = ids + it["cont"]
        for pos, vec in dumps:
            assert vec.shape == (n_vocab,) and np.all(np.isfinite(vec))
            rel = f"logits/{it['name']}_p{pos}.f32"
            vec.astype("<f4").tofile(os.path.join(out_dir, rel))
            total_bytes += vec.nbytes
            kind = "decode" if pos >= n else "prompt"
            logit_rows.append((it["name"], pos, n_vocab, rel, all_ids[: pos + 1], kind,
                               top2_margin(vec)))
    del llm_all

    # ---- write generate.tsv -----------------------------------------------------------------
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lib_ver = llama_cpp.__version__
    ggml_commit, ggml_version = ggml_info()
    hdr = [
        f"# HAT golden greedy continuations, generated by tests/golden/gen_golden.py on {now}",
        f"# reference: llama-cpp-python {lib_ver}, llama.cpp {llama_cpp.llama_version().decode()}"
        f" (ggml {ggml_version}, ggml_commit {ggml_commit}), CPU backend",
        f"# model: SmolLM2-135M-Instruct.Q4_1.gguf sha256 {sha}",
        "# settings: " + " ".join(f"{k}={v}" for k, v in SETTINGS.items() if k != "verbose"),
        f"# greedy: prompt in one eval(), then argmax (lowest id on ties) + single-token eval(),"
        f" {N_GEN} tokens max",
        f"# end-of-generation ids (llama_vocab_is_eog): {' '.join(map(str, eog))}; generation stops"
        f" after one of them is produced and that id IS included as the last continuation id",
        "# prompts tokenized with llm.tokenize(utf8, add_bos=False, special=is_chat); no BOS"
        " (tokenizer.ggml.add_bos_token=false)",
        "# columns: name<TAB>hex(prompt utf-8)<TAB>is_chat<TAB>prompt ids<TAB>continuation ids",
    ]
    for it in items:
        if it["stopped"]:
            hdr.append(f"# {it['name']}: stopped at EOG id {it['cont'][-1]} after {len(it['cont'])} tokens")
    with open(os.path.join(out_dir, "generate.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(hdr) + "\n")
        for it in items:
            f.write("\t".join([it["name"], it["text"].encode("utf-8").hex(), str(it["is_chat"]),
                               " ".join(map(str, it["ids"])), " ".join(map(str, it["cont"]))]) + "\n")

    # ---- write logits.tsv -------------------------------------------------------------------
    with open(os.path.join(out_dir, "logits.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write(f"# HAT golden logits, generated by tests/golden/gen_golden.py on {now}; same"
                f" reference/settings as generate.tsv\n")
        f.write("# each file: n_vocab little-endian float32 logits at position pos; ids = every token"
                " fed at positions 0..pos (prompt ids, then greedy ids from generate.tsv)\n")
        f.write("# prompt positions come from one batched eval with logits_all=True; positions >="
                " n_prompt come from single-token decode evals (logits_all=False)\n")
        f.write("# columns: name<TAB>pos<TAB>n_vocab<TAB>file<TAB>ids 0..pos\n")
        for name, pos, nv, rel, ids, kind, _ in logit_rows:
            f.write(f"{name}\t{pos}\t{nv}\t{rel}\t{' '.join(map(str, ids))}\n")

    # ---- MANIFEST.md --------------------------------------------------------------------------
    detok = make_llm(model, logits_all=False)
    write_manifest(out_dir, items, logit_rows, crosscheck, eog, sha, now, lib_ver,
                   ggml_version, ggml_commit, total_bytes, detok, ctx_log)
    print(f"wrote generate.tsv ({len(items)} prompts), logits.tsv ({len(logit_rows)} vectors,"
          f" {total_bytes} bytes), MANIFEST.md")
    for k, v in crosscheck.items():
        print(f"cross-check {k}: max |logits_all last - plain last| = {v:g}")


def ggml_info():
    import ctypes
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    try:
        lib = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"))
        out = []
        for fn in ("ggml_commit", "ggml_version"):
            f = getattr(lib, fn)
            f.restype = ctypes.c_char_p
            out.append(f().decode())
        return tuple(out)
    except (OSError, AttributeError):
        return ("unknown", "unknown")


def excerpt(llm, ids, limit=160):
    s = llm.detokenize(ids, special=True).decode("utf-8", errors="replace")
    s = s.replace("\\", "\\\\").replace("\n", "\\n").replace("|", "\\|")
    return s if len(s) <= limit else s[:limit] + "…"


def write_manifest(out_dir, items, logit_rows, crosscheck, eog, sha, now, lib_ver,
                   ggml_version, ggml_commit, total_bytes, llm, ctx_log):
    L = []
    a = L.append
    a("# Golden data manifest (tests/golden/)")
    a("")
    a("`generate.tsv`, `logits.tsv` and `logits/*.f32` are produced by `tests/golden/gen_golden.py`"
      " from **llama.cpp only** (via llama-cpp-python); this file is written by the same script."
      " Do not edit them by hand; regenerate. (`tokenizer.tsv` and `chat.tsv` come from"
      " `gen_tokenizer_golden.py` and are described there.)")
    a("")
    a("## Regenerate")
    a("")
    a("```sh")
    a("# from the repository root, with llama-cpp-python " + lib_ver + " installed in .venv")
    a(".venv/bin/python tests/golden/gen_golden.py --model models/SmolLM2-135M-Instruct.Q4_1.gguf")
    a("```")
    a("")
    a("## Provenance")
    a("")
    a(f"- generated: {now} on {platform.machine()} ({cpu_model()}), Python {platform.python_version()}")
    a(f"- llama-cpp-python: {lib_ver} (built from the PyPI sdist; CPU backend only)")
    a(f"- llama.cpp: `llama_version()` = `{llama_cpp.llama_version().decode()}`; vendored ggml {ggml_version},"
      f" `ggml_commit()` = `{ggml_commit}` (the short git hash of the vendored llama.cpp/ggml tree"
      " baked in at build time; `-dirty` is as reported by the build)")
    a(f"- llama.cpp system info: `{llama_cpp.llama_print_system_info().decode().strip()}`")
    a(f"- model: `models/SmolLM2-135M-Instruct.Q4_1.gguf`, sha256 `{sha}`")
    a(f"- numpy {np.__version__}")
    a("")
    a("## Settings")
    a("")
    a("| setting | value |")
    a("|---|---|")
    for k, v in SETTINGS.items():
        note = ""
        if k == "flash_attn":
            note = (" → `context_params.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED` (asserted);"
                    " non-flash path: f16 KV cache, f32 KQ, f32 softmax whose probabilities are"
                    " converted to f16 for the product with the f16 V cache")
        if k in ("type_k", "type_v"):
            note = " (GGML_TYPE_F16, llama.cpp's default; asserted)"
        if k == "seed":
            note = " (irrelevant for greedy; fixed anyway)"
        a(f"| {k} | {v}{note} |")
    a("| use_mmap | True (default) |")
    a("| add_bos | False for every prompt (`tokenizer.ggml.add_bos_token=false`) |")
    a("| special | True only for the chat prompt |")
    a(f"| greedy length | {N_GEN} tokens, stopping early only after an end-of-generation id |")
    a(f"| end-of-generation ids | {', '.join(map(str, eog))} (`llama_vocab_is_eog`) |")
    a("")
    a("llama.cpp's own context log (captured from a throw-away verbose context; the script exits"
      " if flash_attn=disabled, K/V f16, n_ctx or n_ubatch are not confirmed there):")
    a("")
    a("```")
    for ln in ctx_log:
        a(ln)
    a("```")
    a("")
    a("Numerics of this reference (ggml CPU backend; background for engine comparisons): the weights"
      " are not repacked (the log line above: no CPU_REPACK), so matrix products use ggml's plain"
      " vec_dot kernels, which first convert the f32 activations to the weight's vec_dot type —"
      " Q8_1 for the Q4_1 weights, Q8_0 for the Q8_0 tied embedding/output, f16 for the f16 K and V"
      " cache — and accumulate in f32. Without flash attention, KQ = K(f16)·Q(f16), scaled, masked"
      " and soft-maxed in f32; the probabilities are then converted to f16 for the V product.")
    a("")
    a("Greedy decoding: the whole prompt goes through one `llm.eval()` (one ubatch, all prompts"
      " are ≤ 512 tokens), then repeatedly take `argmax` of the last logits (numpy argmax: lowest id"
      " wins a tie) and `llm.eval([tok])`. Logits are read with `llama_get_logits_ith(ctx, -1)`."
      " If generation stops at an end-of-generation id, that id is the last id of the"
      " continuation column.")
    a("")
    a("The chat prompt is `tokenizer.chat_template` from the GGUF metadata rendered with jinja2"
      " (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, like HF transformers),"
      " `messages=[{\"role\":\"user\",\"content\":...}]`, `add_generation_prompt=True`,"
      " tokenized with `special=True`.")
    a("")
    a("## Files")
    a("")
    a("- `generate.tsv`: `#` comment lines, then one line per prompt:"
      " `name<TAB>hex(prompt UTF-8)<TAB>is_chat<TAB>prompt ids<TAB>continuation ids`.")
    a("- `logits.tsv`: `#` comment lines, then `name<TAB>pos<TAB>n_vocab<TAB>file<TAB>ids 0..pos`;"
      " `ids` are all tokens fed up to and including `pos`, so a consumer can recompute from ids alone.")
    a("- `logits/<name>_p<pos>.f32`: n_vocab raw little-endian float32 values."
      f" {len(logit_rows)} files, {total_bytes} bytes in all.")
    a("")
    a("Prompt-position logits (pos < n_prompt) come from a separate `Llama(logits_all=True)` instance"
      " evaluating the whole prompt in one batch. The decode-step vectors (pos = n_prompt+"
      f"{N_DECODE_LOGITS - 1}) come from the greedy run: they are the logits of the single-token"
      f" eval of the {N_DECODE_LOGITS}th generated token, i.e. the prediction of generated token"
      f" {N_DECODE_LOGITS + 1}.")
    a("")
    a("Reproducibility: two consecutive runs of the script on the machine above gave bit-identical"
      " ids and logit files.")
    a("")
    a("Cross-check, last prompt position, logits_all=True batch vs logits_all=False batch"
      " (max |Δ|): " + ", ".join(f"{k} {v:g}" for k, v in crosscheck.items()) + ".")
    a("")
    a("## Prompts, continuations, top-2 margins")
    a("")
    a("`min margin` is the smallest top1−top2 logit gap over all greedy steps of that prompt"
      " (step 0 = prediction from the last prompt position); a small value means the"
      " continuation is near a tie from that step on, so an engine with slightly different"
      " rounding may legitimately diverge there.")
    a("")
    a("| name | chat | prompt tok | gen tok | stop | min margin | at step | 2nd smallest |")
    a("|---|---|---|---|---|---|---|---|")
    for it in items:
        ms = np.array(it["margins"])
        order = np.argsort(ms)
        second = f"{ms[order[1]]:.4f} (step {order[1]})" if len(ms) > 1 else "-"
        stop = f"EOG {it['cont'][-1]}" if it["stopped"] else "length"
        a(f"| {it['name']} | {it['is_chat']} | {len(it['ids'])} | {len(it['cont'])} | {stop} |"
          f" {ms.min():.4f} | {int(order[0])} | {second} |")
    a("")
    a("Excerpts (detokenized with `llm.detokenize(..., special=True)`, newlines shown as `\\n`):")
    a("")
    a("| name | prompt (start) | continuation (start) |")
    a("|---|---|---|")
    for it in items:
        p = excerpt(llm, it["ids"][-24:] if len(it["ids"]) > 24 else it["ids"], 100)
        if len(it["ids"]) > 24:
            p = "…" + p
        a(f"| {it['name']} | {p} | {excerpt(llm, it['cont'], 200)} |")
    a("")
    a("## Logit dumps")
    a("")
    a("| name | pos | kind | top1 id | top1−top2 | file |")
    a("|---|---|---|---|---|---|")
    for name, pos, nv, rel, ids, kind, (m, t) in logit_rows:
        a(f"| {name} | {pos} | {kind} | {t} | {m:.4f} | `{rel}` |")
    a("")
    with open(os.path.join(out_dir, "MANIFEST.md"), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(L))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f", {os.cpu_count()} logical cores"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    main()
