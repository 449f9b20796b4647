#!/usr/bin/env python3
"""End-to-end benchmark of the U-shape baseline on the real model, and of the link emulation.

For each link profile (default: ethernet and 4g) runs `hat run` with 1 device + 1 cloud rank
(mpiexec -n 2) `--repeats` times, and reports medians over the repeats of:
  * TTFT and TBT (the median of each run's TBT samples), tokens/s, bytes per token each way;
  * the same run with links not emulated (the compute-only floor), so the link's share shows;
  * the link emulation check: for every message, the measured delay (send -> the receiver
    sees it) against the configured model: nominal = latency + 8*bytes/bandwidth, and the
    model's own per-message delivery time (nominal + queueing behind the previous message +
    the jitter draw). Reported: median and p99 of (measured - model) and of (measured - nominal)
    next to the profile's mean jitter.
Also runs `hat bench-transport` (transport round trip vs raw MPI ping-pong of the same bytes).
Results go to stdout and to results/bench_ushape.json; the machine is named.

usage: experiments/bench_ushape.py [--hat build/hat] [--repeats 3] [--profiles ethernet,4g]
                                   [--max-tokens 32] [--no-transport]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "analysis"))
import check_trace  # noqa: E402

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_pml="ob1",
           OMPI_MCA_mpi_yield_when_idle="1", OMPI_MCA_rmaps_base_oversubscribe="1", OPENBLAS_NUM_THREADS="1",
           OMP_NUM_THREADS="1", OMPI_MCA_btl="self,vader")


def machine():
    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def links_ini():
    prof, cur = {}, None
    for line in open(os.path.join(ROOT, "configs", "links.ini")):
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            cur = line[1:-1]
            prof[cur] = {}
        elif cur and "=" in line and not line.startswith(("#", ";")):
            k, v = [x.strip() for x in line.split("=", 1)]
            prof[cur][k] = v
    return prof


def run(hat, tmp, name, link, emulate, max_tokens, prompt):
    cfg = os.path.join(tmp, name + ".ini")
    trace = os.path.join(tmp, name + ".h5")
    with open(cfg, "w") as f:
        f.write(f"""[run]
seed = 1
trace = {trace}
[model]
path = {os.path.join(ROOT, 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf')}
ctx = 1024
[split]
a = 2
b = 2
[transport]
wire_dtype = fp16
chunk_tokens = 32
emulate_links = {emulate}
[profiles]
links = {os.path.join(ROOT, 'configs', 'links.ini')}
devices = {os.path.join(ROOT, 'configs', 'devices.ini')}
[devices]
count = 1
link = {link}
prompt = {prompt}
max_tokens = {max_tokens}
""")
    p = subprocess.run(["mpiexec", "-n", "2", hat, "run", "--config", cfg, "--overwrite"], env=ENV,
                       capture_output=True, text=True, timeout=600)
    if p.returncode:
        sys.exit(f"hat run failed ({name}):\n{p.stdout}\n{p.stderr}")
    return check_trace.load_trace(trace)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hat", default=os.path.join(ROOT, "build", "hat"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profiles", default="ethernet,4g")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--no-transport", action="store_true")
    a = ap.parse_args()
    prompt = ("Summarise the main ideas of split inference for large language models, where an edge device "
              "runs the first and last layers and a server runs the middle, in a short paragraph.")
    links = links_ini()
    tmp = tempfile.mkdtemp(prefix="hat_bench_")
    out = {"machine": machine(), "repeats": a.repeats, "max_tokens": a.max_tokens, "profiles": {}}
    print(f"# machine: {out['machine']}")
    print(f"# U-shape baseline, SmolLM2-135M Q4_1, split a=2 b=2, fp16 wire, chunk 32, 1 device + 1 cloud rank, "
          f"{a.max_tokens} tokens, median of {a.repeats} runs")
    print(f"{'profile':10s} {'links':5s} {'TTFT_ms':>9s} {'TBT_ms':>8s} {'tok/s':>7s} {'up_B/tok':>9s} "
          f"{'dn_B/tok':>9s} {'late_med_us':>11s} {'late_p99_us':>11s} {'dn_over_nom_ms':>15s} {'jitter_mean_ms':>14s}")
    print("# late_*: measured delay - the link model's delay per message (decode steps, both directions);"
          " dn_over_nom: mean of measured downlink delay - (latency + 8*bytes/bw), to compare with the profile's mean jitter")
    for prof in ["off"] + a.profiles.split(","):
        link = "ethernet" if prof == "off" else prof
        emulate = "off" if prof == "off" else "on"
        rows = []
        for r in range(a.repeats):
            t = run(a.hat, tmp, f"{prof}_{r}", link, emulate, a.max_tokens, prompt)
            tok, st, dv = t["tokens"], t["steps"], t["devices"]
            tbt = tok["latency_s"][tok["index"] > 0]
            meas_dn = st["t_down_ready"] - st["t_down_send"]
            meas_up = st["t_cloud_ready"] - st["t_up_send"]
            # lateness against the model's delivery time, on decode steps: there the receiver is
            # idle when the message falls due (during pipelined prefill a busy receiver sees a
            # due message only when it next polls: queueing, not link emulation)
            dec = st["kind"] == 1
            late = np.concatenate([(meas_dn - st["down_model_s"])[dec], (meas_up - st["up_model_s"])[dec]])
            if prof != "off":
                L = links[link]
                lat = float(L["latency_ms"]) * 1e-3
                nominal_dn = lat + 8 * st["down_bytes"] / (float(L["down_mbps"]) * 1e6)
                over = (meas_dn - nominal_dn)[dec]   # = jitter draw (+ lateness): compare with the profile's mean
            else:
                over = np.zeros(1)
            rows.append(dict(ttft=float(tok["latency_s"][tok["index"] == 0][0]), tbt=float(np.median(tbt)),
                             tok_s=float(dv["gen_tokens"][0] / (dv["t_done"][0] - dv["t_request"][0])),
                             up=float(dv["up_bytes"][0] / dv["gen_tokens"][0]),
                             dn=float(dv["down_bytes"][0] / dv["gen_tokens"][0]),
                             late_med=float(np.median(late)), late_p99=float(np.percentile(late, 99)),
                             over=float(np.mean(over))))
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        jit = "-"
        if prof != "off":
            L = links[link]
            j = float(L.get("jitter_ms", 0))
            kind = L.get("jitter", "none")
            jit = f"{(j * 0.7979 if kind == 'normal' else j if kind == 'exponential' else 0):.2f}"
        out["profiles"][prof] = {"runs": rows, "median": med}
        print(f"{prof:10s} {emulate:5s} {med['ttft'] * 1e3:9.2f} {med['tbt'] * 1e3:8.2f} {med['tok_s']:7.2f} "
              f"{med['up']:9.0f} {med['dn']:9.0f} {med['late_med'] * 1e6:11.0f} {med['late_p99'] * 1e6:11.0f} "
              f"{med['over'] * 1e3:15.3f} {jit:>14s}")
    if not a.no_transport:
        p = subprocess.run(["mpiexec", "-n", "2", a.hat, "bench-transport"], env=ENV, capture_output=True, text=True,
                           timeout=600)
        print(p.stdout.strip())
        out["bench_transport"] = p.stdout
    os.makedirs(os.path.join(ROOT, "results"), exist_ok=True)
    with open(os.path.join(ROOT, "results", "bench_ushape.json"), "w") as f:
        json.dump(out, f, indent=1)
    print("results: results/bench_ushape.json")


if __name__ == "__main__":
    main()
