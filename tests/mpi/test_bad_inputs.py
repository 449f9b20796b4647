#!/usr/bin/env python3
"""The bad-input table (tests/bad_inputs.tsv) as one test: each case's config changes and arguments
applied to a valid base config, `hat run` under mpiexec with every rank wrapped so that its own
exit status is reported (or another subcommand of `hat`, with or without mpiexec); checked: the exit
status of every rank (or an MPI_Abort for faults found during the run), the message, no hang (60 s),
and the files that must be unchanged. Cases run a few at a time (--jobs); the report keeps the
table's order.

usage: test_bad_inputs.py HAT MODEL SRC_DIR [--only NAME] [--jobs N]
"""
import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_pml="ob1",
           OMPI_MCA_btl="self,vader", OMPI_MCA_mpi_yield_when_idle="1", OMPI_MCA_rmaps_base_oversubscribe="1",
           OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
TIMEOUT_S = 60


def base_config(model, src, trace):
    return {"run": {"mode": "ushape", "trace": trace},
            "model": {"path": model, "ctx": "512"},
            "split": {"a": "2", "b": "2"},
            "profiles": {k: os.path.join(src, "configs", k + ".ini") for k in ("links", "devices", "servers", "shapes")},
            "devices": {"count": "2", "link": "ethernet", "prompt": '"What is the capital of France?"',
                        "max_tokens": "4"}}


def apply(cfg, changes):
    """the config column's changes to cfg; returns the raw lines to put first and last"""
    head, tail = [], []
    for ch in (c.strip() for c in changes.split("; ")):
        if not ch or ch == "-":
            continue
        if ch[0] in "^+":
            (head if ch[0] == "^" else tail).append(ch[1:])
            continue
        if ch.startswith("-"):
            sec, key = ch[1:].split(".", 1)
            cfg.get(sec, {}).pop(key, None)
            continue
        lhs, val = ch.split("=", 1)
        sec, key = lhs.rsplit(".", 1) if lhs.startswith("device.") else lhs.split(".", 1)
        cfg.setdefault(sec, {})[key] = val
    return head, tail


def write_ini(path, cfg, head=(), tail=()):
    with open(path, "w") as f:
        for line in head:
            f.write(line + "\n")
        for sec, kv in cfg.items():
            f.write(f"[{sec}]\n")
            for k, v in kv.items():
                f.write(f"{k} = {v}\n" if v != "" else f"{k} =\n")
        for line in tail:
            f.write(line + "\n")


def write(path, data):
    with open(path, "wb" if isinstance(data, (bytes, bytearray)) else "w") as f:
        f.write(data)


def derive(tmp, src, base, name, pattern, repl):
    """{tmp}/name: a copy of configs/<base> with the first match of pattern (which must match) replaced"""
    text = open(os.path.join(src, "configs", base)).read()
    new, n = re.subn(pattern, repl, text, count=1, flags=re.M)
    assert n, f"configs/{base}: no match for {pattern!r}"
    write(os.path.join(tmp, name), new)


def make_models(tmp, model, src):
    buf = bytearray(open(model, "rb").read())
    sys.path.insert(0, os.path.join(src, "experiments"))
    import gguf_prune  # noqa: E402
    meta = gguf_prune.read_meta(model, memoryview(buf))
    infos, data0 = meta[7], meta[8]
    offset = {n: o for n, _, _, o in infos}

    def put(name, data):
        write(os.path.join(tmp, name), data)

    def header(name, fmt, at, value, size=len(buf)):
        """the model's header with one field packed at `at`, the tensor data left as a hole (a sparse
        file of `size` bytes: the header's checks come first, and nothing reads the data)"""
        head = bytearray(buf[:data0])
        struct.pack_into("<" + fmt, head, at, value)
        put(name, head)
        os.truncate(os.path.join(tmp, name), size)

    def key(k):   # the offset of a metadata key's value (after its name and type)
        return bytes(buf[:data0]).index(gguf_prune.gguf_str(k.encode())) + 8 + len(k) + 4

    def tensor(n):   # the offsets of a tensor info's n_dims, type and data offset
        at = bytes(buf[:data0]).index(gguf_prune.gguf_str(n)) + 8 + len(n)
        nd = struct.unpack_from("<I", buf, at)[0]
        return at, at + 4 + 8 * nd, at + 4 + 8 * nd + 4

    put("trunc.gguf", buf[:100000])
    put("trunc10.gguf", buf[:10])
    put("empty.gguf", b"")
    put("magic.gguf", b"GGUX" + buf[4:200000])
    put("version.gguf", buf[:4] + struct.pack("<I", 99) + buf[8:200000])
    put("trunc_infos.gguf", buf[:data0 - 5000])   # inside the tensor infos
    q = b"blk.0.attn_q.weight"
    _, q_type, q_off = tensor(q)
    header("trunc_data.gguf", "I", 0, struct.unpack_from("<I", buf)[0], len(buf) - 4096)   # the last 4 kB cut
    header("moved.gguf", "Q", q_off, offset[q] + 65536)            # into its neighbour
    header("past_end.gguf", "Q", q_off, len(buf) - data0 - 4096)   # past the file's end
    header("type99.gguf", "I", q_type, 99)
    header("missing.gguf", "B", tensor(q)[0] - 1, ord("u"))       # its name ends in 'weighu'
    header("count.gguf", "Q", 8, 1 << 60)                          # the tensor count
    header("ctx0.gguf", "I", key("llama.context_length"), 0)
    header("layers31.gguf", "I", key("llama.block_count"), 31)
    header("arch.gguf", "5s", key("general.architecture") + 8, b"qwen2")
    nan = bytearray(buf)
    at = data0 + offset[q] + 5 * 20
    nan[at:at + 2] = struct.pack("<H", 0x7E00)   # Q4_1 block 5's scale
    put("nan.gguf", nan)
    inf = bytearray(buf)   # an F32 weight: output_norm.weight[7] = +Inf (the device's output submodel)
    at = data0 + offset[b"output_norm.weight"] + 28
    inf[at:at + 4] = struct.pack("<f", float("inf"))
    put("inf_norm.gguf", inf)
    other = bytearray(buf)   # another model file: one byte of general.name changed, loads fine
    other[key("general.name") + 8] ^= 0x20
    put("other.gguf", other)


def make_adapters(tmp, hat, model):
    """a real adapter (identity form, split 2,2) and its corpus from `hat calibrate`, and damaged copies"""
    good = os.path.join(tmp, "good.adapter")
    p = subprocess.run([hat, "calibrate", "--model", model, "--prompts", os.path.join(tmp, "prompts.txt"), "--split",
                        "2,2", "--form", "identity", "--gen", "2", "--threads", "1", "--out", good,
                        "--corpus-out", os.path.join(tmp, "corpus.tok")],
                       env=ENV, capture_output=True, text=True, timeout=TIMEOUT_S)
    if p.returncode:
        sys.exit(f"hat calibrate failed:\n{p.stdout}{p.stderr}")
    ad = open(good, "rb").read()
    write(os.path.join(tmp, "trunc.adapter"), ad[:200])
    write(os.path.join(tmp, "crc.adapter"), ad[:-8] + bytes([ad[-8] ^ 1]) + ad[-7:])
    write(os.path.join(tmp, "version.adapter"), ad[:8] + struct.pack("<I", 99) + ad[12:])
    write(os.path.join(tmp, "garbage.adapter"), os.urandom(600))
    write(os.path.join(tmp, "empty.adapter"), b"")


def make_prompts(tmp):
    def jsonl(name, *lines):
        write(os.path.join(tmp, name), "".join(line + "\n" for line in lines))
    one = json.dumps({"prompt": "one"})
    jsonl("bad.jsonl", one, json.dumps({"prompt": "two"}), '{"prompt": broken')
    jsonl("noprompt.jsonl", one, json.dumps({"text": "two"}))
    jsonl("number.jsonl", one, json.dumps({"prompt": 5}))
    jsonl("array.jsonl", one, "[1, 2]")
    jsonl("blank.jsonl", one, json.dumps({"prompt": "   "}))
    jsonl("long.jsonl", one, json.dumps({"prompt": "the cat sat on the mat " * 200}))
    jsonl("nulesc.jsonl", one, json.dumps({"prompt": "two\u0000three"}))   # the escape \u0000
    jsonl("twice.jsonl", one, '{"prompt": "two", "prompt": "three"}')
    write(os.path.join(tmp, "prompts.txt"), "What is the capital of France?\nName three colours.\n")
    write(os.path.join(tmp, "empty.txt"), "")
    write(os.path.join(tmp, "blanks.txt"), "\n   \n\t\n")
    write(os.path.join(tmp, "nul.txt"), b"one prompt\nand \0 a NUL byte\n")
    os.link(os.path.join(tmp, "prompts.txt"), os.path.join(tmp, "link.txt"))


def make_profiles(tmp, src):
    derive(tmp, src, "links.ini", "links_neg.ini", r"^up_mbps = .*", "up_mbps = -48")
    derive(tmp, src, "links.ini", "links_nolat.ini", r"^latency_ms = .*\n", "")
    derive(tmp, src, "links.ini", "links_key.ini", r"^jitter = normal", "jitter = normal\nloss = 0.1")
    derive(tmp, src, "links.ini", "links_jitter.ini", r"^jitter = normal", "jitter = gaussian")
    derive(tmp, src, "links.ini", "links_noeq.ini", r"^jitter = normal", "jitter normal")
    derive(tmp, src, "devices.ini", "devices_eff.ini", r"^efficiency = .*", "efficiency = 1.5")
    derive(tmp, src, "devices.ini", "devices_junk.ini", r"^mem_gb = .*", "mem_gb = 64GB")
    derive(tmp, src, "servers.ini", "servers_gpus.ini", r"^gpus = .*", "gpus = 0")
    derive(tmp, src, "shapes.ini", "shapes_heads.ini", r"^heads = .*", "heads = 7")
    derive(tmp, src, "shapes.ini", "shapes_small.ini", r"^layers = 32", "layers = 4")
    derive(tmp, src, "shapes.ini", "shapes_dup.ini", r"^\[llama-2-7b\]", "[llama-2-7b]\n[llama-2-7b]")
    write(os.path.join(tmp, "empty.ini"), "# nothing here\n")


def make_files(tmp, hat, model, src):
    make_models(tmp, model, src)
    make_prompts(tmp)
    make_adapters(tmp, hat, model)
    make_profiles(tmp, src)
    write(os.path.join(tmp, "existing.h5"), b"an earlier run's results\n" * 100)
    os.mkdir(os.path.join(tmp, "adir"))


_sha_cache = {}


def sha(path):
    st = os.stat(path)
    key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _sha_cache:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _sha_cache[key] = h.hexdigest()
    return _sha_cache[key]


def run_case(a, tmp, k, row):
    """one table row: None when it passed, else what went wrong; and the output line naming it"""
    name, ranks, changes, args, exit_want, needle, keep = row
    cfg_path = os.path.join(tmp, f"case{k}.ini")
    sub = lambda s: s.replace("{tmp}", tmp).replace("{cfg}", cfg_path).replace("{model}", a.model).replace("{src}", a.src)  # noqa: E731
    cfg = base_config(a.model, a.src, os.path.join(tmp, f"case{k}.h5"))
    write_ini(cfg_path, cfg, *apply(cfg, sub(changes)))
    keep_files = [sub(x) for x in keep.split()] if keep != "-" else []
    before = {f: sha(f) for f in keep_files}
    words = shlex.split(sub(args)) if args != "-" else []
    if not words or words[0].startswith("-"):   # hat run on the case's config; else the whole command line
        words = ["run", "--config", cfg_path] + words
    if ranks == "-":
        cmd = [a.hat] + words
    else:   # every rank through a shell that reports its own exit status
        cmd = ["mpiexec", "-n", ranks, "sh", "-c", '"$0" "$@"; echo "rank-exit $OMPI_COMM_WORLD_RANK $?" >&2',
               a.hat] + words
    try:
        p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=a.src)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired:
        return f"no exit within {TIMEOUT_S} s (a hang)", ""
    problems = []
    if ranks == "-":
        codes, n_ranks = {0: rc}, 1
    else:
        codes, n_ranks = {int(r): int(c) for r, c in re.findall(r"rank-exit (\d+) (\d+)", out)}, int(ranks)
    if exit_want == "abort":
        if rc == 0:
            problems.append("exit 0, expected the run to be aborted")
    else:
        want = int(exit_want)
        if sorted(codes) != list(range(n_ranks)) or any(c != want for c in codes.values()):
            problems.append(f"exit statuses {codes} (rank: status), expected {want} on each of the {n_ranks}")
    if sub(needle) not in out:
        problems.append(f"the output lacks {sub(needle)!r}")
    for f in keep_files:
        if not os.path.exists(f) or sha(f) != before[f]:
            problems.append(f"{f} was changed")
    if problems:
        return "; ".join(problems) + "\n" + out[-1500:], ""
    return None, next((l for l in out.splitlines() if sub(needle) in l), "")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hat")
    ap.add_argument("model")
    ap.add_argument("src")
    ap.add_argument("--only")
    ap.add_argument("--jobs", type=int, default=4)
    a = ap.parse_args()
    a.hat, a.model, a.src = (os.path.abspath(x) for x in (a.hat, a.model, a.src))
    tmp = tempfile.mkdtemp(prefix="hat_bad_")
    make_files(tmp, a.hat, a.model, a.src)
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(a.src, "tests", "bad_inputs.tsv"))
            if l.strip() and not l.startswith("#")]
    failures = 0
    todo = []
    for k, row in enumerate(rows):
        if len(row) != 7:
            print(f"FAIL table line {k}: {len(row)} columns, expected 7: {row}")
            failures += 1
        elif not a.only or a.only == row[0]:
            todo.append((k, row))
    names = [row[0] for row in rows]
    for n in sorted({n for n in names if names.count(n) > 1}):
        print(f"FAIL table: the name {n!r} is used twice")
        failures += 1
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        for (k, row), (problem, line) in zip(todo, pool.map(lambda kr: run_case(a, tmp, *kr), todo)):
            if problem:
                failures += 1
                print(f"FAIL {row[0]}: {problem}", flush=True)
            else:
                what = "aborted" if row[4] == "abort" else f"exit {row[4]}" + (" on every rank" if row[1] != "-" else "")
                print(f"ok   {row[0]}: {what}: {line.strip()[:150]}", flush=True)
    if failures:
        print(f"{len(rows)} cases: {failures} FAILED; files in {tmp}")
    else:
        print(f"{len(rows)} cases: all passed")
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
