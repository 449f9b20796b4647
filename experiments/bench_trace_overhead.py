#!/usr/bin/env python3
"""What trace handling costs the cloud's serving loop on rank 0 (rank 0 is a cloud rank and the
trace root).

Runs `hat run` under mpiexec on a shortened copy of a shipped configuration (default
configs/paper30.ini: 1 cloud rank, 30 HAT devices, emulated Wi-Fi/5G/4G links; identity draft
adapter, so no calibration is needed) --repeats times, and reads from each run:
  - rank 0's stderr line "trace overhead (rank 0 serving loop): passes P mean_us M max_us X
    total_ms T" (also the trace attribute trace_overhead): time the serving thread spent in
    collector_poll / collector_add, per serving pass (collector.h);
  - from the trace: rank 0's forward passes (/batches t_end - t_start: median, mean, tokens per
    pass, time per token), the overall mean TTFT and TBT (/summary), and the run's wall time.
Prints one line per run and the medians over the runs; with several binaries (--hat A,B) the runs
alternate between them and each gets its medians. Speed figures depend on the machine and
its load (every rank shares this machine's cores): compare before/after on the same machine in
the same session, and never assert them in a test.

usage: experiments/bench_trace_overhead.py [--hat build/hat[,OTHER...]] [--config configs/paper30.ini]
        [--devices N] [--max-tokens 32] [--repeats 5] [--json results/bench_trace_overhead.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "analysis"))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import check_trace  # noqa: E402
from bench_ushape import ENV, machine  # noqa: E402

MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
PREFIX = "trace overhead (rank 0 serving loop):"


def shortened(cfg_path, trace, devices, max_tokens):
    """the configuration with absolute paths, the identity adapter, and the benchmark's sizes
    (per-device sections beyond --devices dropped); returns (text, n_cloud, n_devices)"""
    subs = {"path": MODEL, "trace": trace, "max_tokens": str(max_tokens), "adapter": "identity",
            "links": os.path.join(ROOT, "configs", "links.ini"),
            "devices": os.path.join(ROOT, "configs", "devices.ini"),
            "prompts": os.path.join(ROOT, "configs", "prompts.txt")}
    if devices:
        subs["count"] = str(devices)
    out, sec, n_cloud, n_dev = [], "", 1, 0
    for line in open(cfg_path):
        s = line.strip()
        if s.startswith("["):
            sec = s
        if devices and sec.startswith("[device.") and int(sec[8:].rstrip("]")) >= devices:
            continue   # a per-device section beyond the shortened count
        key = s.split("=")[0].strip() if "=" in s and not s.startswith(("#", ";")) else None
        if key == "count" and sec != "[devices]":
            key = None
        if key in subs:
            line = f"{key} = {subs[key]}\n"
        if key == "ranks" and sec == "[cloud]":
            n_cloud = int(s.split("=")[1].split()[0])
        if key == "count":
            n_dev = int(line.split("=")[1])
        out.append(line)
    return "".join(out), n_cloud, n_dev


def one_run(args, hat, tmp, i):
    trace = os.path.join(tmp, f"run{i}.h5")
    text, n_cloud, n_dev = shortened(args.config, trace, args.devices, args.max_tokens)
    cfg = os.path.join(tmp, "bench.ini")
    with open(cfg, "w") as f:
        f.write(text)
    cmd = ["mpiexec", "--oversubscribe", "-n", str(n_cloud + n_dev), hat, "run", "--config", cfg, "--overwrite"]
    t0 = time.time()
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=args.timeout)
    wall = time.time() - t0
    if p.returncode != 0:
        raise RuntimeError(f"run {i}: exit {p.returncode}\n{(p.stdout + p.stderr)[-3000:]}")
    line = next((l for l in p.stderr.splitlines() if l.startswith(PREFIX)), None)
    if line is None:
        raise RuntimeError(f"run {i}: no '{PREFIX}' line on stderr (an older hat?)")
    kv = line[len(PREFIX):].split()
    cost = {kv[j]: float(kv[j + 1]) for j in range(0, len(kv) - 1, 2)}
    tr = check_trace.load_trace(trace)
    bat = tr["batches"]
    mine = bat[bat["cloud_rank"] == 0]
    dt = mine["t_end"] - mine["t_start"]
    overall = tr["summary"][tr["summary"]["device"] == -1][0]
    os.remove(trace)
    return {"wall_s": wall, "passes": int(cost["passes"]), "mean_us": cost["mean_us"], "max_us": cost["max_us"],
            "total_ms": cost["total_ms"], "pass_median_ms": float(statistics.median(dt)) * 1e3,
            "pass_mean_ms": float(dt.mean()) * 1e3, "pass_tokens": float(mine["n_tok"].mean()),
            "us_per_token": float(dt.sum() / mine["n_tok"].sum()) * 1e6, "tbt_mean_ms": float(overall["tbt_mean"]) * 1e3,
            "ttft_mean_ms": float(overall["ttft_mean"]) * 1e3, "tokens": int(len(tr["tokens"])), "ranks": n_cloud + n_dev}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hat", default=os.path.join(ROOT, "build", "hat"),
                    help="the binary, or several separated by commas (e.g. before,after): run in turn, medians each")
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "paper30.ini"))
    ap.add_argument("--devices", type=int, default=0, help="override [devices] count (0: the config's)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.2f}")
    print(f"config {os.path.relpath(args.config, ROOT)}, devices {args.devices or 'as configured'}, "
          f"max_tokens {args.max_tokens}, {args.repeats} repeats")
    hats = args.hat.split(",")
    runs = {h: [] for h in hats}
    with tempfile.TemporaryDirectory(prefix="hat_bench_trace_") as tmp:
        for i in range(args.repeats):
            for h in hats:   # interleaved: every binary sees the same drift of the machine's load
                r = one_run(args, h, tmp, i)
                runs[h].append(r)
                print(f"{h} run {i}: {r['ranks']} ranks, {r['tokens']} tokens, {r['passes']} passes; trace handling "
                      f"per pass mean {r['mean_us']:.2f} us, max {r['max_us']:.1f} us, total {r['total_ms']:.2f} ms; "
                      f"forward pass median {r['pass_median_ms']:.3f} ms, mean {r['pass_mean_ms']:.3f} ms, "
                      f"{r['pass_tokens']:.1f} tokens, {r['us_per_token']:.0f} us/token; TTFT {r['ttft_mean_ms']:.0f} ms, "
                      f"TBT {r['tbt_mean_ms']:.1f} ms; wall {r['wall_s']:.1f} s", flush=True)
    med = {}
    for h in hats:
        m = med[h] = {k: statistics.median(r[k] for r in runs[h])
                      for k in ("mean_us", "max_us", "total_ms", "pass_median_ms", "pass_mean_ms", "pass_tokens",
                                "us_per_token", "ttft_mean_ms", "tbt_mean_ms", "wall_s", "passes")}
        print(f"{h}: median of {len(runs[h])}: trace handling per pass mean {m['mean_us']:.2f} us, max "
              f"{m['max_us']:.1f} us, total {m['total_ms']:.2f} ms over {m['passes']:.0f} passes; forward pass median "
              f"{m['pass_median_ms']:.3f} ms, mean {m['pass_mean_ms']:.3f} ms, {m['pass_tokens']:.1f} tokens, "
              f"{m['us_per_token']:.0f} us/token; TTFT {m['ttft_mean_ms']:.0f} ms, TBT {m['tbt_mean_ms']:.1f} ms; "
              f"wall {m['wall_s']:.1f} s")
    print(f"load after: {os.getloadavg()[0]:.2f}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "args": vars(args), "runs": runs, "median": med}, f, indent=1)


if __name__ == "__main__":
    main()
