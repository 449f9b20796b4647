#!/usr/bin/env python3
"""Which pass-time model the cloud's measurements justify: `hat run` (1 device, 1 cloud rank,
links not emulated) prefills a long prompt in fixed chunks of each size of --chunks; every cloud
pass of every run (its tokens n, the context its tokens attend to s, its time t: the /batches
table) is then fitted by weighted least squares (weights 1/t^2, as src/timing/cost_fit.c) with
  linear:     t = c0 + c1 n + c2 s
  quadratic:  t = c0 + c1 n + c2 s + c3 n^2       (what the cloud fits online: a per-token cost
                                                  that grows with the pass size)
and the relative residuals (rms, max) are printed per model, with the per-token time per chunk
size. The machine is named; times are this machine's.

usage: experiments/fit_pass_cost.py [--chunks 8,16,32,64,128,256] [--length 1024] [--split 2,2]
        [--json results/fit_pass_cost.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "analysis"))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import check_trace  # noqa: E402
from bench_ushape import ENV, machine  # noqa: E402
from bench_chunking import MODEL, long_prompts  # noqa: E402


def fit(cols, t):
    w = 1.0 / t
    coef, *_ = np.linalg.lstsq(cols * w[:, None], t * w, rcond=None)
    rel = cols @ coef / t - 1
    return coef, float(np.sqrt(np.mean(rel ** 2))), float(np.max(np.abs(rel)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hat", default=os.path.join(ROOT, "build", "hat"))
    ap.add_argument("--chunks", default="8,16,32,64,128,256")
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--split", default="2,2")
    ap.add_argument("--json", default=os.path.join(ROOT, "results", "fit_pass_cost.json"))
    args = ap.parse_args()
    a, b = (int(x) for x in args.split.split(","))
    prompt = long_prompts()[args.length]
    print(f"machine: {machine()}")
    print(f"{prompt['tokens']}-token prompt, split a={a} b={b}, 1 device + 1 cloud rank, links not emulated")
    rows = []
    with tempfile.TemporaryDirectory(prefix="hat_cost_") as tmp:
        pf = os.path.join(tmp, "p.jsonl")
        with open(pf, "w") as f:
            f.write(json.dumps({"prompt": prompt["prompt"]}) + "\n")
        for ch in (int(x) for x in args.chunks.split(",")):
            trace, cfg = os.path.join(tmp, f"c{ch}.h5"), os.path.join(tmp, f"c{ch}.ini")
            with open(cfg, "w") as f:
                f.write(f"[run]\nmode = ushape\ntrace = {trace}\n[model]\npath = {MODEL}\nctx = 4608\n"
                        f"[split]\na = {a}\nb = {b}\n[cloud]\nmax_batch_tokens = 256\n"
                        f"[transport]\nwire_dtype = fp16\nchunking = fixed\nchunk_tokens = {ch}\nemulate_links = off\n"
                        f"[devices]\ncount = 1\nprompts = {pf}\nmax_tokens = 1\n")
            p = subprocess.run(["mpiexec", "-n", "2", args.hat, "run", "--config", cfg], env=ENV, capture_output=True,
                               text=True, timeout=3600)
            if p.returncode != 0:
                raise RuntimeError(p.stdout[-1500:] + p.stderr[-1500:])
            bat = check_trace.load_trace(trace)["batches"]
            t = bat["t_end"] - bat["t_start"]
            rows += [(int(n), float(s), float(x), ch) for n, s, x in zip(bat["n_tok"], bat["ctx"], t)]
            pt = t / bat["n_tok"]
            print(f"  chunks of {ch:3d}: {len(bat)} passes, {1e3 * float(np.median(pt)):.2f} ms per token (median), "
                  f"prefill {float(t.sum()):.2f} s of cloud passes", flush=True)
    n = np.array([r[0] for r in rows], float)
    s = np.array([r[1] for r in rows])
    t = np.array([r[2] for r in rows])
    res = {"machine": machine(), "rows": rows, "models": {}}
    for name, cols in [("linear", np.stack([np.ones_like(n), n, s], 1)),
                       ("quadratic", np.stack([np.ones_like(n), n, s, n * n], 1))]:
        coef, rms, mx = fit(cols, t)
        res["models"][name] = {"coef": coef.tolist(), "rms_rel": rms, "max_rel": mx}
        print(f"  {name:9s}: coefficients {', '.join(f'{c:.3g}' for c in coef)}; relative residual rms "
              f"{100 * rms:.1f} %, max {100 * mx:.1f} %")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
