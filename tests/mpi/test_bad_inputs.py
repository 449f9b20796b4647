#!/usr/bin/env python3
"""The bad-input table (tests/bad_inputs.tsv) as one test: each case's config changes and arguments
applied to a valid base config, `hat run` under mpiexec with every rank wrapped so that its own
exit status is reported; checked: the exit status of every rank (or an MPI_Abort for faults found
during the run), the message, no hang (60 s), and the files that must be unchanged.

usage: test_bad_inputs.py HAT MODEL SRC_DIR [--only NAME]
"""
import argparse
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_pml="ob1",
           OMPI_MCA_btl="self,vader", OMPI_MCA_mpi_yield_when_idle="1", OMPI_MCA_rmaps_base_oversubscribe="1",
           OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def base_config(model, src, trace):
    return {"run": {"mode": "ushape", "trace": trace},
            "model": {"path": model, "ctx": "512"},
            "split": {"a": "2", "b": "2"},
            "profiles": {k: os.path.join(src, "configs", k + ".ini") for k in ("links", "devices", "servers", "shapes")},
            "devices": {"count": "2", "link": "ethernet", "prompt": '"What is the capital of France?"',
                        "max_tokens": "4"}}


def apply(cfg, changes):
    for ch in (c.strip() for c in changes.split(";")):
        if not ch or ch == "-":
            continue
        if ch.startswith("-"):
            sec, key = ch[1:].split(".", 1)
            cfg.get(sec, {}).pop(key, None)
            continue
        lhs, val = ch.split("=", 1)
        sec, key = lhs.split(".", 1)
        cfg.setdefault(sec, {})[key] = val


def write_ini(path, cfg):
    with open(path, "w") as f:
        for sec, kv in cfg.items():
            f.write(f"[{sec}]\n")
            for k, v in kv.items():
                f.write(f"{k} = {v}\n")


def make_files(tmp, model, src):
    buf = bytearray(open(model, "rb").read())
    open(os.path.join(tmp, "trunc.gguf"), "wb").write(buf[:100000])
    sys.path.insert(0, os.path.join(src, "experiments"))
    import gguf_prune  # noqa: E402
    meta = gguf_prune.read_meta(model, memoryview(buf))
    infos, data0 = meta[7], meta[8]
    name = b"blk.0.attn_q.weight"
    off = next(o for n, _, _, o in infos if n == name)
    nan = bytearray(buf)
    nan[data0 + off + 5 * 20:data0 + off + 5 * 20 + 2] = struct.pack("<H", 0x7E00)   # Q4_1 block 5's scale
    open(os.path.join(tmp, "nan.gguf"), "wb").write(nan)
    at = bytes(buf[:data0]).index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
    nd = struct.unpack_from("<I", buf, at)[0]
    struct.pack_into("<Q", buf, at + 4 + 8 * nd + 4, off + 65536)   # n_dims, dims, type, then the offset
    open(os.path.join(tmp, "moved.gguf"), "wb").write(buf)
    open(os.path.join(tmp, "existing.h5"), "wb").write(b"an earlier run's results\n" * 100)
    with open(os.path.join(tmp, "bad.jsonl"), "w") as f:
        f.write(json.dumps({"prompt": "one"}) + "\n" + json.dumps({"prompt": "two"}) + "\n{\"prompt\": broken\n")
    with open(os.path.join(tmp, "noprompt.jsonl"), "w") as f:
        f.write(json.dumps({"prompt": "one"}) + "\n" + json.dumps({"text": "two"}) + "\n")
    with open(os.path.join(tmp, "prompts.txt"), "w") as f:
        f.write("What is the capital of France?\nName three colours.\n")
    os.link(os.path.join(tmp, "prompts.txt"), os.path.join(tmp, "link.txt"))


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hat")
    ap.add_argument("model")
    ap.add_argument("src")
    ap.add_argument("--only")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="hat_bad_")
    make_files(tmp, a.model, a.src)
    rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(a.src, "tests", "bad_inputs.tsv"))
            if l.strip() and not l.startswith("#")]
    failures = 0
    for k, row in enumerate(rows):
        if len(row) != 7:
            print(f"FAIL table line {k}: {len(row)} columns, expected 7: {row}")
            failures += 1
            continue
        name, ranks, changes, args, exit_want, needle, keep = row
        if a.only and a.only != name:
            continue
        cfg_path = os.path.join(tmp, f"case{k}.ini")
        sub = lambda s: s.replace("{tmp}", tmp).replace("{cfg}", cfg_path).replace("{model}", a.model).replace("{src}", a.src)  # noqa: E731
        cfg = base_config(a.model, a.src, os.path.join(tmp, f"case{k}.h5"))
        apply(cfg, sub(changes))
        write_ini(cfg_path, cfg)
        keep_files = [sub(x) for x in keep.split()] if keep != "-" else []
        before = {f: sha(f) for f in keep_files}
        extra = sub(args).split() if args != "-" else []
        # every rank through a shell that reports its own exit status
        cmd = ["mpiexec", "-n", ranks, "sh", "-c", '"$0" "$@"; echo "rank-exit $OMPI_COMM_WORLD_RANK $?" >&2',
               a.hat, "run", "--config", cfg_path] + extra
        try:
            p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=60)
            out, rc = p.stdout + p.stderr, p.returncode
        except subprocess.TimeoutExpired:
            print(f"FAIL {name}: no exit within 60 s (a hang)")
            failures += 1
            continue
        problems = []
        codes = {int(r): int(c) for r, c in re.findall(r"rank-exit (\d+) (\d+)", out)}
        if exit_want == "abort":
            if rc == 0:
                problems.append("exit 0, expected the run to be aborted")
        else:
            want = int(exit_want)
            if sorted(codes) != list(range(int(ranks))) or any(c != want for c in codes.values()):
                problems.append(f"rank exit statuses {codes}, expected {want} on each of the {ranks} ranks")
        if sub(needle) not in out:
            problems.append(f"the output lacks {sub(needle)!r}")
        for f in keep_files:
            if not os.path.exists(f) or sha(f) != before[f]:
                problems.append(f"{f} was changed")
        if problems:
            failures += 1
            print(f"FAIL {name}: " + "; ".join(problems) + "\n" + out[-1500:])
        else:
            line = next((l for l in out.splitlines() if sub(needle) in l), "")
            print(f"ok   {name}: {'aborted' if exit_want == 'abort' else f'exit {exit_want} on every rank'}: "
                  f"{line.strip()[:150]}", flush=True)
    print(f"{len(rows)} cases: {'all passed' if not failures else f'{failures} FAILED'}; files in {tmp}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
