#!/usr/bin/env python3
"""A compute profile of this host's CPU for the one cost model (src/timing/cost_model.h), fitted to
measured forward passes, and its predictions checked against a second, independent measurement.

`hat bench-pass` times the CPU backend's passes over the cloud's middle layers (--layers, default
2:28 of SmolLM2-135M: split 2,2) — decode (1 token at several cache lengths) and prefill chunks of
16..512 tokens — and prints, beside each time, the cost model's weight bytes, K/V bytes and FLOPs.
The profile's effective rates, B = mem_bw_gbs * efficiency, F = tflops * flops_efficiency and
A = attn_tflops (the CPU engine's attention is a scalar loop over the cache, far slower than its
matmuls), are fitted to the first measurement by minimising the largest relative error of
    t = max((weight + kv bytes) / B, (flops - attention flops) / F) + attention flops / A
(a log-spaced grid search, then refined); the profile is written as a devices.ini section
(efficiency = flops_efficiency = 1, so mem_bw_gbs and tflops are the fitted rates), and
`hat bench-pass --profile` prints the C model's own prediction with that profile for every shape.
This host's speed drifts by up to ~30 % over minutes, so the measurement is --rounds sweeps of
every shape, one pass each, interleaved: the even sweeps' medians are fitted, the odd sweeps'
medians (the same minutes, other passes) are the check. Times are this machine's (named).

usage: experiments/fit_cpu_profile.py [--layers 2:28] [--tokens 1,16,32,64,128,256,512]
        [--pos 0,256] [--rounds 6] [--threads 1] [--out results/cpu_profile.ini] [--json FILE] [--hat BIN]
        [--server-out results/derated_cpu_server.ini --derate 0.7]
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
from bench_ushape import ENV, machine  # noqa: E402

MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
HAT = os.path.join(ROOT, "build", "hat")


def bench(args, extra=()):
    cmd = [args.hat, "bench-pass", "--model", MODEL, "--layers", args.layers, "--tokens", args.tokens, "--pos", args.pos,
           "--repeats", "1", "--threads", str(args.threads), *extra]
    out = subprocess.run(cmd, env=ENV, check=True, capture_output=True, text=True).stdout
    rows = [list(map(float, ln.split("\t"))) for ln in out.splitlines() if ln and not ln.startswith("#")]
    return np.array(rows)   # n_tok pos0 median min weight kv flops attn_flops pred


def worst_error(rows, B, F, A):
    """largest relative error for arrays of B, F (broadcast) and one A"""
    mem = (rows[:, 4] + rows[:, 5])[:, None, None] / B[None, :, None]
    mm = (rows[:, 6] - rows[:, 7])[:, None, None] / F[None, None, :]
    t = np.maximum(mem, mm) + rows[:, 7][:, None, None] / A
    return np.max(np.abs(t / rows[:, 2][:, None, None] - 1), axis=0)


def fit(rows):
    best = (np.inf, 0, 0, 0)
    Bs, Fs, As = np.geomspace(1e8, 1e12, 81), np.geomspace(1e8, 1e13, 101), np.geomspace(1e8, 1e14, 61)
    for _ in range(4):   # a coarse grid, then finer grids around the best point
        for A in As:
            e = worst_error(rows, Bs, Fs, A)
            i, j = np.unravel_index(np.argmin(e), e.shape)
            if e[i, j] < best[0]:
                best = (float(e[i, j]), Bs[i], Fs[j], A)
        _, B, F, A = best
        Bs, Fs, As = B * np.geomspace(0.7, 1.4, 41), F * np.geomspace(0.7, 1.4, 41), A * np.geomspace(0.7, 1.4, 21)
    e, B, F, A = best
    return B, F, A, e


def mem_gb():
    with open("/proc/meminfo") as f:
        for ln in f:
            if ln.startswith("MemTotal:"):
                return int(ln.split()[1]) * 1024 / 1e9
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", default="2:28")
    ap.add_argument("--tokens", default="1,16,32,64,128,256,512")
    ap.add_argument("--pos", default="0,256")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved sweeps: even ones fitted, odd ones checked")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "cpu_profile.ini"))
    ap.add_argument("--json")
    ap.add_argument("--server-out", help="also write the profile, times --derate, as a servers.ini section [derated-cpu]")
    ap.add_argument("--derate", type=float, default=0.7)
    ap.add_argument("--hat", default=HAT, help="the hat binary [build/hat]")
    args = ap.parse_args()
    m = machine()
    print(f"machine: {m}")
    sweeps = [bench(args) for _ in range(max(2, args.rounds))]
    first = sweeps[0].copy()
    first[:, 2] = np.median(np.stack([x[:, 2] for x in sweeps[0::2]]), axis=0)
    check = np.median(np.stack([x[:, 2] for x in sweeps[1::2]]), axis=0)
    B, F, A, e = fit(first)
    name = "this-host-cpu"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        f.write(f"# fitted by experiments/fit_cpu_profile.py to `hat bench-pass --layers {args.layers}` on {m}\n"
                f"# ({args.threads} thread(s); largest relative error on the fitted passes {100 * e:.1f} %)\n"
                f"[{name}]\nmem_bw_gbs = {B / 1e9:.6g}\nefficiency = 1\ntflops = {F / 1e12:.6g}\n"
                f"flops_efficiency = 1\nattn_tflops = {A / 1e12:.6g}\nmem_gb = {mem_gb():.3g}\n"
                f"source = \"fitted to measured forward passes of this host (experiments/fit_cpu_profile.py)\"\n")
    os.replace(args.out + ".tmp", args.out)
    if args.server_out:   # the same, derated, as a servers.ini profile: a modelled cloud this host can always keep up with
        k = args.derate
        with open(args.server_out + ".tmp", "w") as f:
            f.write(f"# {k} x the profile fitted by experiments/fit_cpu_profile.py on {m}: the cloud's real compute\n"
                    f"# stays under its prediction, so every pass padded to it lasts the model's time\n"
                    f"[derated-cpu]\nmem_bw_gbs = {k * B / 1e9:.6g}\nefficiency = 1\ntflops = {k * F / 1e12:.6g}\n"
                    f"flops_efficiency = 1\nattn_tflops = {k * A / 1e12:.6g}\nmem_gb = {mem_gb():.3g}\ngpus = 1\n"
                    f"link_gbs = 1\nlink_latency_us = 0\n"
                    f"source = \"{k} x this host's fitted CPU profile (experiments/fit_cpu_profile.py)\"\n")
        os.replace(args.server_out + ".tmp", args.server_out)
        print(f"derated server profile [derated-cpu] ({k} x) written to {args.server_out}")
    print(f"fitted: effective bandwidth {B / 1e9:.3g} GB/s, effective compute {F / 1e9:.3g} GFLOP/s, attention {A / 1e9:.3g} GFLOP/s "
          f"(largest relative error on the fit's own passes {100 * e:.1f} %); profile written to {args.out}")
    second = bench(args, ("--profiles", args.out, "--profile", name))
    second[:, 2] = check
    print(f"\nthe odd sweeps' medians (not fitted) against the C cost model's prediction with the profile:")
    print(f"{'tokens':>6} {'pos0':>5} {'measured ms':>12} {'predicted ms':>13} {'error':>7}")
    rows = []
    for r in second:
        err = r[8] / r[2] - 1
        rows.append({"n_tok": int(r[0]), "pos0": int(r[1]), "measured_s": r[2], "predicted_s": r[8], "error": err})
        print(f"{int(r[0]):>6} {int(r[1]):>5} {1e3 * r[2]:>12.2f} {1e3 * r[8]:>13.2f} {100 * err:>6.1f}%")
    worst = max(abs(x["error"]) for x in rows)
    dec = [x for x in rows if x["n_tok"] == 1]
    pre = [x for x in rows if 16 <= x["n_tok"] <= 512]
    print(f"\nlargest |error|: decode {100 * max(abs(x['error']) for x in dec):.1f} %, prefill 16-512 "
          f"{100 * max(abs(x['error']) for x in pre):.1f} % (target: within 15 %)" if dec and pre else "")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": m, "fit_rows": first.tolist(), "B": B, "F": F, "A": A, "fit_max_rel": e, "rows": rows, "worst": worst}, f, indent=1)


if __name__ == "__main__":
    main()
