#!/usr/bin/env python3
"""Chunked prefill: TTFT under [transport] chunking = off / fixed / dynamic, measured with `hat run`.

Part 1, the grid: for every prompt length (configs/prompts_long.jsonl: real license texts of about
  128..4096 tokens), link profile and device count (every device sends the same long prompt at
  once), the run's mean TTFT for chunking off, fixed --fixed tokens, every fixed size of --sweep
  (the best fixed size is the sweep's minimum, --fixed included) and dynamic; medians over
  --repeats. Reported per row: dynamic / best fixed, dynamic / off, and the dynamic runs'
  predicted TTFT (the device's first plan, /devices ttft_pred_s) against the measured one.
Part 2, the stall (--stall): 4 devices, device 0 sends a --stall-length prompt while the other
  three decode short prompts; the others' p99 TBT with chunking dynamic and max_stall_ms = --stall-ms,
  with dynamic and no bound, and with fixed --fixed; the bound binds when the plans say so
  (/devices stall_bound). The cloud's decode pass time (median of its 3-token passes) is printed
  beside it, and one decode round as the others see it (their median TBT in the same run with device
  0's prompt a short one): the target is p99 TBT <= bound + one decode round (the bound caps the cloud time a chunk
  adds to a round; the round's own device compute and links are outside it).
Part 3, the chooser's own time: build/tests/test_chunk_plan speed (a 4096-token plan).

Every rank shares this machine's cores (the cloud is as slow as the devices here; see
docs/design.md): the machine is named with the results, and the times are this machine's.
Devices run the --compute profile (default jetson-orin-nano-8gb): where this CPU is slower than
the profile the measured time counts (the trace's profile_exceeded says how often).

usage: experiments/bench_chunking.py [--lengths 128,512,1024,2048,4096] [--links wifi,5g,4g]
        [--devices 1,4] [--fixed 16] [--sweep 32,64,128,256] [--repeats 3] [--wire fp16]
        [--split 2,2] [--compute jetson-orin-nano-8gb] [--cloud-compute NAME] [--servers FILE] [--prefill-order fcfs]
        [--time-scale 1] [--stall] [--stall-only] [--stall-ms 200]
        [--stall-length 2048] [--json results/bench_chunking.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "analysis"))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
import check_trace  # noqa: E402
from bench_ushape import ENV, machine  # noqa: E402

MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
SHORT = ["What is the capital of France?", "Write a haiku about the sea.", "List three prime numbers."]


def long_prompts():
    out = {}
    for line in open(os.path.join(ROOT, "configs", "prompts_long.jsonl")):
        if line.strip():
            o = json.loads(line)
            out[int(o["target_tokens"])] = o
    return out


def write_cfg(path, args, n_dev, link, policy, chunk, prompts_file, trace, max_tokens, stall_ms=0, ctx=4608,
              dev_extra=None):
    a, b = (int(x) for x in args.split.split(","))
    with open(path, "w") as f:
        f.write(f"""[run]
mode = ushape
seed = 1
trace = {trace}
time_scale = {args.time_scale}
[model]
path = {MODEL}
ctx = {ctx}
[split]
a = {a}
b = {b}
[cloud]
ranks = 1
max_batch_tokens = 256
prefill_order = {args.prefill_order}
compute = {args.cloud_compute}
[transport]
wire_dtype = {args.wire}
chunking = {policy}
chunk_tokens = {chunk}
max_stall_ms = {stall_ms}
inflight = 4
emulate_links = on
[profiles]
links = {os.path.join(ROOT, 'configs', 'links.ini')}
devices = {os.path.join(ROOT, 'configs', 'devices.ini')}
servers = {os.path.abspath(args.servers)}
[devices]
count = {n_dev}
link = {link}
compute = {args.compute}
prompts = {prompts_file}
chat = on
max_tokens = {max_tokens}
""")
        for d, text in (dev_extra or {}).items():
            f.write(f"[device.{d}]\n{text}")


def hat_run(args, cfg, n_ranks):
    p = subprocess.run(["mpiexec", "-n", str(n_ranks), args.hat, "run", "--config", cfg, "--overwrite"], env=ENV,
                       capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"{cfg}: exit {p.returncode}\n{p.stdout[-1500:]}{p.stderr[-1500:]}")


def one(args, tmp, n_dev, link, length, policy, chunk, rep, prompt_file):
    name = f"{n_dev}_{link}_{length}_{policy}{chunk if policy == 'fixed' else ''}_{rep}"
    trace, cfg = os.path.join(tmp, name + ".h5"), os.path.join(tmp, name + ".ini")
    write_cfg(cfg, args, n_dev, link, policy, chunk, prompt_file, trace, args.max_tokens)
    t0 = time.time()
    hat_run(args, cfg, n_dev + 1)
    t = check_trace.load_trace(trace)
    dv = t["devices"]
    ttft = dv["t_first"] - dv["t_request"]
    pre = t["steps"][t["steps"]["kind"] == 0]
    return {"ttft_s": float(np.mean(ttft)), "ttft_pred_s": float(np.mean(dv["ttft_pred_s"])),
            "chunks": float(np.mean(dv["chunks"])), "mean_chunk": float(np.mean(pre["n_tok"])),
            "wall_s": time.time() - t0, "profile_exceeded": int(dv["profile_exceeded"].sum()),
            "cloud_distorted": int(t["batches"]["distorted"].sum()) if "distorted" in t["batches"].dtype.names else 0,
            "cloud_passes": int(len(t["batches"]))}


def part_grid(args, tmp, prompts):
    rows = []
    sizes = sorted({args.fixed} | {int(x) for x in args.sweep.split(",") if x})
    for n_dev in (int(x) for x in args.devices.split(",")):
        for link in args.links.split(","):
            for length in (int(x) for x in args.lengths.split(",")):
                pf = os.path.join(tmp, f"prompt_{length}.jsonl")
                with open(pf, "w") as f:
                    f.write(json.dumps({"prompt": prompts[length]["prompt"]}) + "\n")
                runs = {}
                for rep in range(args.repeats):   # policies interleaved within a repeat: drift hits all alike
                    for pol, ch in [("off", 0), ("dynamic", 0)] + [("fixed", s) for s in sizes]:
                        key = pol if pol != "fixed" else f"fixed{ch}"
                        runs.setdefault(key, []).append(one(args, tmp, n_dev, link, length, pol, ch or 16, rep, pf))
                med = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items()}
                best = min((k for k in med if k.startswith("fixed")), key=lambda k: med[k]["ttft_s"])
                dyn, off = med["dynamic"], med["off"]
                row = {"devices": n_dev, "link": link, "length": length, "tokens": prompts[length]["tokens"],
                       "median": med, "runs": runs, "best_fixed": best,
                       "dyn_over_best": dyn["ttft_s"] / med[best]["ttft_s"], "dyn_over_off": dyn["ttft_s"] / off["ttft_s"],
                       "pred_err": dyn["ttft_pred_s"] / dyn["ttft_s"] - 1}
                rows.append(row)
                print(f"  {n_dev} dev {link:5s} {prompts[length]['tokens']:5d} tok: off {off['ttft_s']:.3f} s, "
                      f"fixed{args.fixed} {med[f'fixed{args.fixed}']['ttft_s']:.3f} s, best {best} "
                      f"{med[best]['ttft_s']:.3f} s, dynamic {dyn['ttft_s']:.3f} s (mean chunk {dyn['mean_chunk']:.0f}, "
                      f"{dyn['chunks']:.0f} chunks); dyn/best {row['dyn_over_best']:.3f}, dyn/off "
                      f"{row['dyn_over_off']:.3f}; predicted {dyn['ttft_pred_s']:.3f} s ({100 * row['pred_err']:+.1f} %); "
                      f"cloud passes over their profile: {sum(r['cloud_distorted'] for v in runs.values() for r in v)} of "
                      f"{sum(r['cloud_passes'] for v in runs.values() for r in v)}",
                      flush=True)
    return rows


def part_stall(args, tmp, prompts):
    pf = os.path.join(tmp, "stall_prompts.jsonl")
    with open(pf, "w") as f:
        for pr in [prompts[args.stall_length]["prompt"]] + SHORT:
            f.write(json.dumps({"prompt": pr}) + "\n")
    out = []
    # one decode round as the others see it: the same run with device 0 sending a short prompt
    # (their TBT there, median, once their own prompts are in)
    bpf = os.path.join(tmp, "stall_base_prompts.jsonl")
    with open(bpf, "w") as f:
        for pr in SHORT[:1] + SHORT:
            f.write(json.dumps({"prompt": pr}) + "\n")
    trace = os.path.join(tmp, "stall_base.h5")
    write_cfg(trace[:-3] + ".ini", args, 4, args.stall_link, "dynamic", args.fixed, bpf, trace, args.stall_decode,
              stall_ms=args.stall_ms, dev_extra={0: "max_tokens = 1\nstart_s = 1\n"})
    hat_run(args, trace[:-3] + ".ini", 5)
    tb = check_trace.load_trace(trace)["tokens"]
    round_s = float(np.median(tb[(tb["device"] != 0) & (tb["index"] > 1)]["latency_s"]))
    print(f"  one decode round of devices 1-3 with no long prompt: median TBT {1e3 * round_s:.1f} ms", flush=True)
    for label, pol, stall in [("dynamic, max_stall_ms %g" % args.stall_ms, "dynamic", args.stall_ms),
                              ("dynamic, no bound", "dynamic", 0), (f"fixed {args.fixed}", "fixed", 0), ("off", "off", 0)]:
        p99s, binds, dec, ttft0, maxpass = [], [], [], [], []
        for rep in range(args.repeats):
            trace = os.path.join(tmp, f"stall_{pol}_{stall}_{rep}.h5")
            cfg = trace[:-3] + ".ini"
            # the others start decoding first; the long prompt's device comes 1 s later and emits 1 token
            write_cfg(cfg, args, 4, args.stall_link, pol, args.fixed, pf, trace, args.stall_decode, stall_ms=stall,
                      dev_extra={0: "max_tokens = 1\nstart_s = 1\n"})
            hat_run(args, cfg, 5)
            t = check_trace.load_trace(trace)
            tok, dv, bat = t["tokens"], t["devices"], t["batches"]
            d0 = dv[dv["device"] == 0][0]
            # the others' TBTs whose interval overlaps device 0's prefill (t_request, t_first]
            during = (tok["t_emit"] > d0["t_request"]) & (tok["t_emit"] - tok["latency_s"] < d0["t_first"])
            others = tok[(tok["device"] != 0) & (tok["index"] > 0) & during]
            p99s.append(float(np.percentile(others["latency_s"], 99)) if len(others) else float("nan"))
            binds.append(int(d0["stall_bound"]))
            small = bat[(bat["n_tok"] <= 3) & (bat["n_dev"] >= 2)]   # passes of decode rounds only
            dec.append(float(np.median(small["t_end"] - small["t_start"])) if len(small) else float("nan"))
            ttft0.append(float(d0["t_first"] - d0["t_request"]))
            win = bat[(bat["t_end"] > d0["t_request"]) & (bat["t_start"] < d0["t_first"])]
            maxpass.append(float(np.max(win["t_end"] - win["t_start"])) if len(win) else float("nan"))
        r = {"label": label, "p99_tbt_s": statistics.median(p99s), "stall_bound_plans": statistics.median(binds),
             "decode_pass_s": statistics.median(dec), "runs_p99": p99s, "ttft0_s": statistics.median(ttft0),
             "max_pass_s": statistics.median(maxpass), "decode_round_s": round_s}
        out.append(r)
        print(f"  {label:28s}: others' p99 TBT during the long prefill {1e3 * r['p99_tbt_s']:.1f} ms "
              f"(bound + one decode round {1e3 * (stall * 1e-3 + r['decode_round_s']):.0f} ms; longest pass {1e3 * r['max_pass_s']:.0f} ms, decode pass {1e3 * r['decode_pass_s']:.1f} ms; "
              f"plans the stall bound cut: {r['stall_bound_plans']:.0f}); the long prompt's TTFT "
              f"{r['ttft0_s']:.2f} s", flush=True)
    return out


def part_plan_speed(args):
    exe = os.path.join(os.path.dirname(args.hat), "tests", "test_chunk_plan")
    if not os.path.exists(exe):
        return None
    p = subprocess.run([exe, "speed"], capture_output=True, text=True, timeout=60)
    line = next((l for l in p.stdout.splitlines() if l.startswith("speed:")), "")
    print(f"  {line}")
    return line


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hat", default=os.path.join(ROOT, "build", "hat"))
    ap.add_argument("--lengths", default="128,512,1024,2048,4096")
    ap.add_argument("--links", default="wifi,5g,4g")
    ap.add_argument("--devices", default="1,4")
    ap.add_argument("--fixed", type=int, default=16)
    ap.add_argument("--sweep", default="32,64,128,256")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=2)
    ap.add_argument("--wire", default="fp16")
    ap.add_argument("--split", default="2,2")
    ap.add_argument("--compute", default="jetson-orin-nano-8gb")
    ap.add_argument("--cloud-compute", default="none",
                    help="[cloud] compute: a server profile of --servers; every cloud pass is padded to it, so the "
                         "cloud's times are the model's (deterministic where this host is faster)")
    ap.add_argument("--servers", default=os.path.join(ROOT, "configs", "servers.ini"))
    ap.add_argument("--time-scale", type=float, default=1, help="[run] time_scale (the run clock's dilation)")
    ap.add_argument("--prefill-order", default="fcfs", choices=["fcfs", "fair"], help="[cloud] prefill_order")
    ap.add_argument("--stall", action="store_true", help="also part 2 (4 devices, one long prompt)")
    ap.add_argument("--stall-only", action="store_true")
    ap.add_argument("--stall-ms", type=float, default=200)
    ap.add_argument("--stall-length", type=int, default=2048)
    ap.add_argument("--stall-link", default="wifi")
    ap.add_argument("--stall-decode", type=int, default=160, help="tokens the three decoding devices generate")
    ap.add_argument("--json", default=os.path.join(ROOT, "results", "bench_chunking.json"))
    args = ap.parse_args()
    prompts = long_prompts()
    print(f"machine: {machine()}")
    print(f"model {os.path.basename(MODEL)}, split {args.split}, wire {args.wire}, device compute {args.compute}, "
          f"cloud: this machine (1 thread){', padded to the modelled ' + args.cloud_compute if args.cloud_compute != 'none' else ''}"
          f"{f', time_scale {args.time_scale:g}' if args.time_scale != 1 else ''}; medians of {args.repeats} repeats")
    res = {"machine": machine(), "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="hat_chunk_") as tmp:
        print("chooser:")
        res["plan_speed"] = part_plan_speed(args)
        if not args.stall_only:
            print("TTFT grid:")
            res["grid"] = part_grid(args, tmp, prompts)
        if args.stall or args.stall_only:
            print(f"stall: 4 devices on {args.stall_link}, device 0 sends {prompts[args.stall_length]['tokens']} tokens, "
                  f"devices 1-3 decode:")
            res["stall"] = part_stall(args, tmp, prompts)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(res, f, indent=1)
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
