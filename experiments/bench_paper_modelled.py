#!/usr/bin/env python3
"""The paper's comparison, modelled, at the size this machine holds in real time: cloud-only,
U-shape, HAT without chunking and HAT, each run by `hat run` with real tokens (SmolLM2-135M) and
the time of the modelled hardware (src/timing/cost_model.h):

  [run] timing_shape = llama-2-7b (the split maps by the same fractions: 8,8 of 30 -> 9,9 of 32),
  [cloud] compute = a6000-8x (the paper's server, configs/servers.ini),
  device compute = jetson-agx-orin (configs/devices.ini), links a mix of wifi / 5g / 4g,
  [run] time_scale: the run clock dilated so that this host's real compute stays under every
  modelled duration (the distorted steps are counted and printed with each row).

The modes: cloud-only (token ids up, the whole model on the server, chunking off); U-shape
(chunking off: one message per prompt, the plain baseline); HAT without chunking (chunking off);
HAT (chunking dynamic). HAT drafts with the adapter given (--adapter, fitted by
scripts/calibrate.sh for the real model and split; its acceptance is the run's, measured).
Reported per mode: the mean TTFT and TBT over the devices (run-clock = modelled seconds), the
acceptance rate, and HAT's reductions against each baseline beside the paper's (TTFT -41..54 %,
TBT -41..77 %, Xie et al., arXiv 2503.18989). Every time is MODELLED: the profiles' and the
shape's, with this host's real compute counted at 1/time_scale; not a measurement of a Jetson or
an A6000.

usage: experiments/bench_paper_modelled.py [--devices 4] [--shape llama-2-7b] [--server a6000-8x]
        [--compute jetson-agx-orin] [--links wifi,5g,4g] [--split 8,8] [--adapter FILE]
        [--time-scale 40] [--max-tokens 16] [--gamma 2] [--adaptive] [--gamma-max 6] [--repeats 1]
        [--modes LIST] [--hat BIN]
        [--json results/bench_paper_modelled.json]
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
MODES = {   # name: (run mode, chunking, HAT)
    "cloud-only": ("cloud-only", "off", False),
    "ushape": ("ushape", "off", False),
    "hat-nochunk": ("hat", "off", True),
    "hat": ("hat", "dynamic", True),
}
PAPER = {"ttft": (41, 54), "tbt": (41, 77)}


def write_cfg(path, trace, mode, args):
    run_mode, chunking, hat = MODES[mode]
    links = args.links.split(",")
    dev_compute = "none" if run_mode == "cloud-only" else args.compute
    sa, sb = args.split.split(",")
    text = f"""[run]
mode = {run_mode}
seed = 1
trace = {trace}
timing_shape = {args.shape}
time_scale = {args.time_scale}
[model]
path = {MODEL}
ctx = 512
[split]
a = {sa}
b = {sb}
[cloud]
compute = {args.server}
max_batch_tokens = 256
[transport]
wire_dtype = fp16
chunking = {chunking}
chunk_tokens = 16
[profiles]
links = {os.path.join(ROOT, 'configs', 'links.ini')}
devices = {os.path.join(ROOT, 'configs', 'devices.ini')}
servers = {os.path.join(ROOT, 'configs', 'servers.ini')}
shapes = {os.path.join(ROOT, 'configs', 'shapes.ini')}
[devices]
count = {args.devices}
compute = {dev_compute}
prompts = {os.path.join(ROOT, 'configs', 'prompts.txt')}
max_tokens = {args.max_tokens}
start_interval_s = {args.stagger}
"""
    for i in range(args.devices):
        text += f"[device.{i}]\nlink = {links[i % len(links)]}\n"
    if hat:
        text += f"[hat]\nadapter = {args.adapter}\ngamma = {args.gamma}\n"
        if args.adaptive:
            text += f"adaptive = on\ngamma_min = 1\ngamma_max = {args.gamma_max}\n"
    with open(path, "w") as f:
        f.write(text)


def run_one(mode, rep, tmp, args):
    cfg, trace = os.path.join(tmp, f"{mode}_{rep}.ini"), os.path.join(tmp, f"{mode}_{rep}.h5")
    write_cfg(cfg, trace, mode, args)
    p = subprocess.run(["mpiexec", "--oversubscribe", "-n", str(args.devices + 1), args.hat, "run", "--config", cfg],
                       env=ENV, capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"{mode}: exit {p.returncode}\n{(p.stdout + p.stderr)[-3000:]}")
    t = check_trace.load_trace(trace)
    overall = t["summary"][t["summary"]["device"] == -1][0]
    dv, b = t["devices"], t["batches"]
    drafted = int(dv["drafted"].sum())
    return {"ttft_s": float(overall["ttft_mean"]), "tbt_s": float(overall["tbt_mean"]),
            "accept": float(dv["accepted"].sum()) / drafted if drafted else None,
            "tok_per_round": float(overall["tokens_per_round"]),
            "cloud_distorted": int(b["distorted"].sum()), "cloud_passes": len(b),
            "device_distorted": int(dv["profile_exceeded"].sum()), "device_pieces": int(2 * dv["n_steps"].sum()),
            "timing": t["attrs"].get("timing_shape", "")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--shape", default="llama-2-7b")
    ap.add_argument("--server", default="a6000-8x")
    ap.add_argument("--compute", default="jetson-agx-orin")
    ap.add_argument("--links", default="wifi,5g,4g")
    ap.add_argument("--split", default="8,8")
    ap.add_argument("--adapter", default=os.path.join(ROOT, "models", "smollm2-a8b8.linear.adapter"))
    ap.add_argument("--time-scale", type=float, default=40)
    ap.add_argument("--stagger", type=float, default=0.25)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--gamma", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--adaptive", action="store_true", help="HAT: the adaptive draft length (speculate.h)")
    ap.add_argument("--gamma-max", type=int, default=6)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--hat", default=os.path.join(ROOT, "build", "hat"))
    ap.add_argument("--json", default=os.path.join(ROOT, "results", "bench_paper_modelled.json"))
    args = ap.parse_args()
    modes = args.modes.split(",")
    print(f"host: {machine()}; MODELLED times: shape {args.shape}, server {args.server}, devices {args.compute}, "
          f"links {args.links}, split {args.split}, {args.devices} devices, time_scale {args.time_scale}")
    res = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="hat_paper_") as tmp:
        for rep in range(args.repeats):   # modes interleaved within each repeat
            for m in modes:
                r = run_one(m, rep, tmp, args)
                res[m].append(r)
                print(f"  {m} repeat {rep}: TTFT {r['ttft_s'] * 1e3:.1f} ms, TBT {r['tbt_s'] * 1e3:.1f} ms, distorted "
                      f"cloud {r['cloud_distorted']}/{r['cloud_passes']}, device {r['device_distorted']}/{r['device_pieces']}",
                      flush=True)
    med = {m: {k: statistics.median([r[k] for r in res[m]]) if res[m][0][k] is not None else None
               for k in ("ttft_s", "tbt_s", "accept", "tok_per_round")} for m in modes}
    print(f"\n{'mode':<12} {'TTFT ms':>9} {'TBT ms':>8} {'accept':>7} {'tok/round':>9} {'distorted (cloud, device)':>26}")
    for m in modes:
        r = med[m]
        dist = f"{sum(x['cloud_distorted'] for x in res[m])}/{sum(x['cloud_passes'] for x in res[m])}, " \
               f"{sum(x['device_distorted'] for x in res[m])}/{sum(x['device_pieces'] for x in res[m])}"
        acc = f"{r['accept']:.3f}" if r["accept"] is not None else "-"
        print(f"{m:<12} {r['ttft_s'] * 1e3:>9.1f} {r['tbt_s'] * 1e3:>8.1f} {acc:>7} {r['tok_per_round']:>9.2f} {dist:>26}")
    red = {}
    if "hat" in med:
        print(f"\nHAT's reductions (1 - HAT / baseline); the paper: TTFT -{PAPER['ttft'][0]}..{PAPER['ttft'][1]} %, "
              f"TBT -{PAPER['tbt'][0]}..{PAPER['tbt'][1]} %")
        for m in modes:
            if m == "hat":
                continue
            red[m] = {k: 1 - med["hat"][k] / med[m][k] for k in ("ttft_s", "tbt_s")}
            print(f"  vs {m:<12} TTFT {-100 * red[m]['ttft_s']:+.1f} %   TBT {-100 * red[m]['tbt_s']:+.1f} %")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"host": machine(), "args": vars(args), "runs": res, "median": med, "reductions": red}, f, indent=1)


if __name__ == "__main__":
    main()
