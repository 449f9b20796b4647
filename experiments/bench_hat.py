#!/usr/bin/env python3
"""HAT on the real model: acceptance of the on-device draft model, and TTFT/TBT against the
baselines, measured in the same session on the same machine.

Part 1, acceptance (one process, no MPI: `hat generate --hat`, the same device code as `hat run`):
  for each adapter form (identity = plain layer skipping, linear, lowrank) and each split (a, b),
  greedy HAT with draft length --gamma over the held-out prompts (configs/prompts.txt, none of
  which is in the calibration prompts): acceptance rate (accepted / drafted tokens) and mean
  tokens per round. The emitted tokens are also compared with `hat generate`'s plain greedy
  output (they must be equal: lossless).
  Adapters are looked up as models/smollm2-a{A}b{B}.{form}.adapter (scripts/calibrate.sh fits
  them); a missing one is reported and skipped.

Part 2, latency (`hat run` under mpiexec): modes ushape, hat, cloud-only; link profiles (default
  wifi and 4g); 1 and 4 devices; each configuration --repeats times; medians over the repeats
  of each run's overall mean TTFT and mean TBT (rank 0's summary, also in the trace), with the
  HAT speed-ups over the U-shape: 1 - TBT_hat / TBT_ushape (the paper reports 41-77 %).
  Devices run the device compute profile given by --compute (default none: this machine's
  speed); the cloud runs at this machine's speed. Every rank shares this machine's cores, so
  with 4 devices the cloud's passes compete with the devices' compute: the machine is named
  with the results.

Results go to stdout and to results/bench_hat.json.

usage: experiments/bench_hat.py [--hat build/hat] [--gamma 4] [--splits 2,2:4,4:8,8]
        [--forms identity,linear,lowrank] [--max-tokens 48] [--repeats 3] [--profiles wifi,4g]
        [--devices 1,4] [--hat-adapter PATH] [--hat-split 2,2] [--compute none] [--adaptive]
        [--gamma-max 6] [--skip-accept]
        [--skip-latency]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "analysis"))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import check_trace  # noqa: E402
from bench_ushape import ENV, machine  # noqa: E402

MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def prompts():
    return [l.strip() for l in open(os.path.join(ROOT, "configs", "prompts.txt")) if l.strip()]


def generate(hat, prompt, max_tokens, extra):
    p = subprocess.run([hat, "generate", "--model", MODEL, "--chat", prompt, "--max-tokens", str(max_tokens),
                        "--print-ids", "--quiet", "--threads", "1", "--ctx", "1024"] + extra,
                       env=ENV, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-2000:])
    ids = [int(x) for x in next(l for l in p.stdout.splitlines() if l.startswith("ids:"))[4:].split()]
    stats = {}
    for line in p.stderr.splitlines():
        if line.startswith("hat: gen_tokens="):
            stats = dict(kv.split("=") for kv in line[5:].split())
    return ids, stats


def adapter_path(form, a, b):
    return "identity" if form == "identity" else os.path.join(ROOT, "models", f"smollm2-a{a}b{b}.{form}.adapter")


def part_acceptance(args):
    rows = []
    refs = {p: generate(args.hat, p, args.max_tokens, [])[0] for p in prompts()}
    for split in args.splits.split(":"):
        a, b = (int(x) for x in split.split(","))
        for form in args.forms.split(","):
            ad = adapter_path(form, a, b)
            if ad != "identity" and not os.path.exists(ad):
                print(f"  split ({a},{b}) {form}: no adapter {os.path.relpath(ad, ROOT)} (run scripts/calibrate.sh)")
                continue
            drafted = accepted = rounds = gen = 0
            lossless = True
            for p in prompts():
                ids, st = generate(args.hat, p, args.max_tokens,
                                   ["--hat", ad, "--split", f"{a},{b}", "--gamma", str(args.gamma)])
                lossless &= ids == refs[p]
                drafted += int(st["drafted"])
                accepted += int(st["accepted"])
                rounds += int(st["rounds"])
                gen += int(st["gen_tokens"]) - 1
            row = {"a": a, "b": b, "form": form, "gamma": args.gamma, "acceptance": accepted / max(1, drafted),
                   "tokens_per_round": gen / max(1, rounds), "rounds": rounds, "lossless": lossless}
            rows.append(row)
            print(f"  split ({a},{b}) {form:8s} gamma {args.gamma}: acceptance {row['acceptance']:.3f}, "
                  f"{row['tokens_per_round']:.2f} tokens/round over {rounds} rounds, "
                  f"tokens {'equal' if lossless else 'DIFFER FROM'} plain greedy")
    return rows


def write_cfg(path, mode, n_dev, link, args, trace):
    a, b = (int(x) for x in args.hat_split.split(","))
    with open(path, "w") as f:
        f.write(f"""[run]
mode = {mode}
seed = 1
trace = {trace}
[model]
path = {MODEL}
ctx = 1024
[split]
a = {a}
b = {b}
[cloud]
ranks = 1
max_batch_tokens = 256
[transport]
wire_dtype = fp16
chunk_tokens = 32
inflight = 4
emulate_links = on
[profiles]
links = {os.path.join(ROOT, 'configs', 'links.ini')}
devices = {os.path.join(ROOT, 'configs', 'devices.ini')}
[devices]
count = {n_dev}
link = {link}
compute = {args.compute}
prompts = {os.path.join(ROOT, 'configs', 'prompts.txt')}
max_tokens = {args.max_tokens}
[hat]
adapter = {args.hat_adapter}
gamma = {args.gamma}
adaptive = {"on" if args.adaptive else "off"}
gamma_min = 1
gamma_max = {max(args.gamma_max, args.gamma)}
""")


def part_latency(args, tmp):
    rows = []
    for n_dev in (int(x) for x in args.devices.split(",")):
        for link in args.profiles.split(","):
            res = {}
            for mode in ("ushape", "hat", "cloud-only"):
                ttft, tbt, acc = [], [], []
                for rep in range(args.repeats):
                    trace = os.path.join(tmp, f"{mode}_{link}_{n_dev}_{rep}.h5")
                    cfg = trace[:-3] + ".ini"
                    write_cfg(cfg, mode, n_dev, link, args, trace)
                    p = subprocess.run(["mpiexec", "--oversubscribe", "-n", str(n_dev + 1), args.hat, "run",
                                        "--config", cfg], env=ENV, capture_output=True, text=True, timeout=900)
                    if p.returncode != 0:
                        raise RuntimeError(f"{mode} {link} {n_dev}: {p.stdout[-1500:]}{p.stderr[-1500:]}")
                    summ = check_trace.load_trace(trace)["summary"]
                    overall = summ[summ["device"] == -1][0]
                    ttft.append(float(overall["ttft_mean"]))
                    tbt.append(float(overall["tbt_mean"]))
                    acc.append(float(overall["accept_rate"]))
                res[mode] = {"ttft_ms": 1e3 * statistics.median(ttft), "tbt_ms": 1e3 * statistics.median(tbt),
                             "acceptance": statistics.median(acc), "ttft_runs_ms": [1e3 * x for x in ttft],
                             "tbt_runs_ms": [1e3 * x for x in tbt]}
            cut_tbt = 1 - res["hat"]["tbt_ms"] / res["ushape"]["tbt_ms"]
            cut_ttft = 1 - res["hat"]["ttft_ms"] / res["ushape"]["ttft_ms"]
            row = {"devices": n_dev, "link": link, **{m: res[m] for m in res}, "hat_tbt_cut_vs_ushape": cut_tbt,
                   "hat_ttft_cut_vs_ushape": cut_ttft}
            rows.append(row)
            print(f"  {n_dev} device(s), {link}: " + "; ".join(
                f"{m} TTFT {res[m]['ttft_ms']:.1f} ms TBT {res[m]['tbt_ms']:.2f} ms" for m in res) +
                f"; HAT vs U-shape: TBT {-100 * cut_tbt:+.0f} %, TTFT {-100 * cut_ttft:+.0f} % "
                f"(acceptance {res['hat']['acceptance']:.3f})")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hat", default=os.path.join(ROOT, "build", "hat"))
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--splits", default="2,2:4,4:8,8")
    ap.add_argument("--forms", default="identity,linear,lowrank")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profiles", default="wifi,4g")
    ap.add_argument("--devices", default="1,4")
    ap.add_argument("--hat-adapter", default=adapter_path("linear", 2, 2))
    ap.add_argument("--hat-split", default="2,2")
    ap.add_argument("--compute", default="none")
    ap.add_argument("--adaptive", action="store_true", help="latency runs: adaptive draft length in [1, --gamma-max]")
    ap.add_argument("--gamma-max", type=int, default=6)
    ap.add_argument("--skip-accept", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    out = {"machine": machine(), "args": vars(args)}
    print(f"machine: {out['machine']}")
    with tempfile.TemporaryDirectory(prefix="bench_hat_") as tmp:
        if not args.skip_accept:
            print(f"acceptance, greedy, gamma {args.gamma}, {len(prompts())} held-out prompts, "
                  f"{args.max_tokens} tokens each:")
            out["acceptance"] = part_acceptance(args)
        if not args.skip_latency:
            ad = os.path.relpath(args.hat_adapter, ROOT) if os.sep in args.hat_adapter else args.hat_adapter
            g = f"adaptive gamma in [1, {args.gamma_max}] from {args.gamma}" if args.adaptive else f"gamma {args.gamma}"
            print(f"latency, adapter {ad}, split {args.hat_split}, {g}, compute {args.compute}, "
                  f"medians of {args.repeats} runs:")
            out["latency"] = part_latency(args, tmp)
    os.makedirs(os.path.join(ROOT, "results"), exist_ok=True)
    with open(os.path.join(ROOT, "results", "bench_hat.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("results/bench_hat.json written")


if __name__ == "__main__":
    main()
