#!/usr/bin/env python3
"""The cost model's predictions (src/timing/cost_model.h, via `hat bench-pass --shape`) against
published batch-1 figures for a 7B LLaMA on the server and device profiles of configs/: decode
tokens/s (one token at a 128-token context) and prefill tokens/s (a 512-token pass). The figures
and their sources are in the table below (each row names where it was read); a row with no
profile of ours is left out. The profiles model what the best engines reach (efficiency 0.8 of
bandwidth, 0.6-0.7 of dense FP16); llama.cpp reaches less, and the table shows by how much.

usage: experiments/check_published.py [--hat build/hat]
"""
import argparse
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XD = "XiongjieDai/GPU-Benchmarks-on-LLM-Inference README (llama.cpp, Dec 2023)"
# (what, shape, profiles file, profile, server?, engine, decode tok/s, prefill tok/s, source)
ROWS = [
    ("A6000 F16", "llama-2-7b", "servers.ini", "a6000", True, "llama.cpp", 44.01, 3707.88, XD),
    ("A6000 Q4_0", "llama-2-7b-q4_0", "servers.ini", "a6000", True, "llama.cpp", 111.57, 2979.12, XD),
    ("A6000 4-bit", "llama-2-7b-q4_0", "servers.ini", "a6000", True, "TensorRT-LLM", 137.56, None,
     "nvidia-holoscan/holohub issue #170 (2024-01-23)"),
    ("A100 80GB F16", "llama-2-7b", "servers.ini", "a100-80gb", True, "llama.cpp", 73.83, 5105.77, XD),
    ("A100 80GB Q4_0", "llama-2-7b-q4_0", "servers.ini", "a100-80gb", True, "llama.cpp", 136.24, 3443.98, XD),
    ("AGX Orin 4-bit", "llama-2-7b-q4_0", "devices.ini", "jetson-agx-orin", False, "MLC (q4f16_ft)", 42.9, None,
     "dusty-nv/jetson-containers packages/llm/mlc/README.md"),
    ("AGX Orin 4-bit", "llama-2-7b-q4_0", "devices.ini", "jetson-agx-orin", False, "llama.cpp", 22.5, None,
     "nvidia-holoscan/holohub issue #170 (IGX Orin iGPU = AGX Orin)"),
    ("Orin Nano 8GB 4-bit", "llama-2-7b-q4_0", "devices.ini", "jetson-orin-nano-8gb", False, "MLC", 16.0, None,
     "dusty-nv/jetson-containers issue #406 (2024-03-01; quantisation not stated)"),
]


def predict(hat, shape, prof_file, prof, server, tokens, pos):
    cmd = [hat, "bench-pass", "--shape", shape, "--shapes", os.path.join(ROOT, "configs", "shapes.ini"),
           "--profiles", os.path.join(ROOT, "configs", prof_file), "--profile", prof, "--tokens", str(tokens),
           "--pos", str(pos)] + (["--server"] if server else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    row = [l for l in out.splitlines() if not l.startswith("#")][0].split("\t")
    return float(row[8])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hat", default=os.path.join(ROOT, "build", "hat"))
    args = ap.parse_args()
    print("| hardware (profile) | weights | engine | decode tok/s: reported / predicted | prefill tok/s (512): "
          "reported / predicted | source |")
    print("|---|---|---|---|---|---|")
    for what, shape, pf, prof, server, engine, dec, pre, src in ROWS:
        pd = 1.0 / predict(args.hat, shape, pf, prof, server, 1, 128)
        pp = 512.0 / predict(args.hat, shape, pf, prof, server, 512, 0)
        d = f"{dec:.1f} / {pd:.1f} ({100 * (pd / dec - 1):+.0f} %)"
        p = f"{pre:.0f} / {pp:.0f} ({100 * (pp / pre - 1):+.0f} %)" if pre else f"- / {pp:.0f}"
        print(f"| {what} ({prof}) | {shape} | {engine} | {d} | {p} | {src} |")


if __name__ == "__main__":
    main()
