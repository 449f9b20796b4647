#!/usr/bin/env python3
"""`hat run` under mpiexec on the real model.

1. Every device's greedy tokens equal the monolithic engine's (`hat generate`) for its prompt,
   with 1-4 devices running different prompts at once, 1-2 cloud ranks, several split points,
   chunk sizes and wire dtypes. fp32 on the wire: equal to the plain monolithic model. fp16/bf16:
   equal to the monolithic model with the same rounding at the same cuts (`--wire-sim`), which
   proves the transport adds nothing to the rounding; where that rounding alone changes the
   greedy tokens of this model, the first differing token is reported.
2. Every trace passes analysis/check_trace.py (schema, every token accounted for, timings
   monotone, summary consistent with the raw records).
3. Link emulation: no message is handed out before the link model's delivery time, and on the
   downlink (the device waits idle, so it sees a message as soon as it is due) the measured
   delay exceeds the model's by little (stated tolerance below).
4. Bad input: a refused command line (exit status 2 on every rank, one message), wrong rank
   count, split out of range, missing model, unknown key, a broken .jsonl prompts file, an existing trace, and protocol faults (truncated message, wrong header version, token ids from a
   device, corrupted payload): each a non-zero exit with a clear message, within a timeout
   (no hang); an aborted run still leaves a readable trace; an existing trace is untouched; a
   trace path that is an input (the config, a hard link of the prompts file) or too long is refused.
5. Tensor parallelism ([cloud] tp): mode exact gives the monolithic engine's tokens (U-shape and
   HAT, one and two groups); mode allreduce runs (its tokens are reported); bad group sizes refused.
7. Chunking ([transport] chunking = off | fixed | dynamic, max_stall_ms): every policy gives the
   monolithic engine's tokens, U-shape and HAT, short prompts and a long multi-line one from a
   JSON-lines prompts file, links emulated, prompts served first come first served ([cloud]
   prefill_order fcfs) and in turn (fair); the trace records the chunks (check_trace.py); bad
   values are refused.
8. Timing at the modelled scale: 4 devices with the Jetson Orin Nano profile, [cloud] compute =
   a6000-8x, the run clock dilated ([run] time_scale): tokens equal the monolithic engine's with
   the real model's shape and with timing_shape = llama-2-7b; every cloud pass carries its
   profile's prediction; the links charge the modelled hidden size (4096 x fp32 per row); the
   distorted steps are reported; an unknown server profile or shape, a shape the split maps to no
   device layer, a server profile missing a key, a device profile too small for its modelled
   layers and time_scale below 1 are refused at start-up.
6. The cloud-only baseline (token ids up, the whole model on the cloud): tokens equal the
   monolithic engine's (greedy) or `hat generate`'s with the device's sampler and seed, the
   trace is flagged "NOT private" and names the backend the whole model ran on (the backend
   table; cuda asked for falls back to the CPU with a note), and an out-of-vocabulary id is
   refused.

usage: test_mpi.py HAT MODEL SOURCE_DIR [--quick]
"""
import hashlib
import os
import subprocess
import sys
import tempfile

import numpy as np

HAT, MODEL, SRC = sys.argv[1], sys.argv[2], sys.argv[3]
QUICK = "--quick" in sys.argv
sys.path.insert(0, os.path.join(SRC, "analysis"))
import check_trace  # noqa: E402

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_pml="ob1",
           OMPI_MCA_mpi_yield_when_idle="1", OMPI_MCA_rmaps_base_oversubscribe="1", OPENBLAS_NUM_THREADS="1",
           OMP_NUM_THREADS="1", OMPI_MCA_btl="self,vader")
TIMEOUT = 300
# Downlink emulation tolerance: the measured delay (send -> device sees it) may exceed the link
# model's delivery time by the idle poll interval (20 us), the sleep granularity and scheduling
# on an oversubscribed 2-core machine; median lateness must stay under 3 ms, none early by more
# than the clock-offset error (0.2 ms).
TOL_LATE_MEDIAN = 3e-3
TOL_EARLY = 2e-4
MAX_TOKENS = 12

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in one sentence why the sky is blue.",
    "List three prime numbers.",
]
failures = []
tmp = tempfile.mkdtemp(prefix="hat_mpi_")


def check_trace_cli(trace, expect_devices=None, schema_only=False):
    """analysis/check_trace.py on a trace: [] when it passes, else its output lines"""
    cmd = [sys.executable, os.path.join(SRC, "analysis", "check_trace.py"), trace]
    if expect_devices is not None:
        cmd += ["--expect-devices", str(expect_devices)]
    if schema_only:
        cmd.append("--schema-only")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return [] if p.returncode == 0 else (p.stdout + p.stderr).splitlines()


def fail(msg):
    print("FAIL:", msg)
    failures.append(msg)


def mpirun(n, args, timeout=TIMEOUT):
    cmd = ["mpiexec", "--oversubscribe", "-n", str(n), HAT, "run"] + args
    try:
        p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        return "timeout", (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")


def run_checked(name, cfg, n_ranks, n_dev):
    """`hat run` on cfg under mpirun, its trace (tmp/name.h5) checked by analysis/check_trace.py and
    loaded; None when the run fails. Every problem is recorded with fail()."""
    rc, out = mpirun(n_ranks, ["--config", cfg])
    if rc != 0:
        fail(f"{name}: exit {rc}\n{out[-3000:]}")
        return None
    trace = os.path.join(tmp, name + ".h5")
    problems = check_trace_cli(trace, expect_devices=n_dev)
    if problems:
        fail(f"{name}: trace check: " + "; ".join(problems[:5]))
    return check_trace.load_trace(trace)


def reference_ids(prompt, wire=None, a=0, b=0):
    """`hat generate` greedy ids: the monolithic model, or with --wire-sim the same model with the
    hidden states rounded to the wire dtype at the two cuts (in one process)"""
    sim = ["--wire-sim", wire, "--split", f"{a},{b}"] if wire else []
    p = subprocess.run([HAT, "generate", "--model", MODEL, "--chat", prompt, "--max-tokens", str(MAX_TOKENS),
                        "--print-ids", "--quiet", "--ctx", "512", "--threads", "1"] + sim,
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    line = [l for l in p.stdout.splitlines() if l.startswith("ids:")][0]
    return [int(x) for x in line[4:].split()]


def write_cfg(name, n_dev, n_cloud, a, b, wire="fp32", chunk=8, emulate="off", links=None, model=MODEL,
              extra="", stagger=0.0, prompts=None, compute="none", mode="ushape", hat=None, dev_keys=None,
              cloud_extra="", transport_extra="", prompts_file=None):
    prompts = prompts or PROMPTS
    path = os.path.join(tmp, name + ".ini")
    with open(path, "w") as f:
        f.write(f"""[run]
mode = {mode}
seed = 7
trace = {os.path.join(tmp, name + '.h5')}
[model]
path = {model}
ctx = 512
[split]
a = {a}
b = {b}
[cloud]
ranks = {n_cloud}
max_batch_tokens = 64
{cloud_extra}[transport]
wire_dtype = {wire}
chunk_tokens = {chunk}
inflight = 3
emulate_links = {emulate}
{transport_extra}[profiles]
links = {os.path.join(SRC, 'configs', 'links.ini')}
devices = {os.path.join(SRC, 'configs', 'devices.ini')}
servers = {os.path.join(SRC, 'configs', 'servers.ini')}
shapes = {os.path.join(SRC, 'configs', 'shapes.ini')}
[devices]
count = {n_dev}
chat = on
max_tokens = {MAX_TOKENS}
start_interval_s = {stagger}
link = ethernet
compute = {compute}
""")
        if prompts_file:
            f.write(f"prompts = {prompts_file}\n")
        for i in range(n_dev):
            f.write(f"[device.{i}]\n" if prompts_file else f"[device.{i}]\nprompt = {prompts[i % len(prompts)]}\n")
            if links:
                f.write(f"link = {links[i % len(links)]}\n")
            if dev_keys and i in dev_keys:
                f.write(dev_keys[i])
        if hat:
            f.write("[hat]\n" + "".join(f"{k} = {v}\n" for k, v in hat.items()))
        f.write(extra)
    return path


refs = {}


def check_run(name, n_dev, n_cloud, a, b, **kw):
    """fp32 on the wire: tokens must equal the monolithic engine's. fp16/bf16: tokens must equal
    the monolithic model with the same rounding at the same cuts (hat generate --wire-sim), and
    where they differ from the unrounded model the first differing index is reported."""
    n_fail = len(failures)
    wire = kw.get("wire", "fp32")
    t = run_checked(name, write_cfg(name, n_dev, n_cloud, a, b, **kw), n_dev + n_cloud, n_dev)
    if t is None:
        return None
    tok = t["tokens"]
    notes = []
    for d in range(n_dev):
        prompt = PROMPTS[d % len(PROMPTS)]
        if prompt not in refs:
            refs[prompt] = reference_ids(prompt)
        sel = tok[tok["device"] == d]
        got = [int(x) for x in sel["token"][np.argsort(sel["index"])]]
        if wire == "fp32":
            if got != refs[prompt]:
                fail(f"{name}: device {d} tokens {got} != monolithic {refs[prompt]}")
            continue
        key = (prompt, wire, a, b)
        if key not in refs:
            refs[key] = reference_ids(prompt, wire, a, b)
        if got != refs[key]:
            fail(f"{name}: device {d} tokens {got} != monolithic with {wire} rounding at the cuts {refs[key]}")
        k = next((i for i, (x, y) in enumerate(zip(got, refs[prompt])) if x != y), None)
        notes.append(f"device {d}: " + ("= unrounded model" if k is None and len(got) == len(refs[prompt])
                                        else f"differs from the unrounded model from token {k}"))
    if len(failures) == n_fail:
        what = ("tokens equal the monolithic engine" if wire == "fp32" else
                f"tokens equal the monolithic engine with {wire} rounding at the cuts ({'; '.join(notes)})")
        extra = ""
        if kw.get("mode") == "hat":
            dv = t["devices"]
            acc = ratio = 0.0
            if int(dv["drafted"].sum()):
                acc = float(dv["accepted"].sum()) / float(dv["drafted"].sum())
            ratio = float((dv["gen_tokens"].astype(float) - 1).sum()) / max(1.0, float(dv["rounds"].sum()))
            extra = f", hat {kw.get('hat')}: acceptance {acc:.3f}, {ratio:.2f} tokens per round"
            if not (dv["rounds"] > 0).all():
                fail(f"{name}: a device made no decode round")
        print(f"ok   {name}: {n_dev} devices, {n_cloud} cloud, split a={a} b={b}, {wire}, "
              f"chunk {kw.get('chunk', 8)}, links {kw.get('emulate', 'off')}{extra}: {what}")
    return t


def check_links(name, t):
    st = t["steps"]
    up = st["t_cloud_ready"] - st["t_up_send"] - st["up_model_s"]
    down = st["t_down_ready"] - st["t_down_send"] - st["down_model_s"]
    if up.min() < -TOL_EARLY or down.min() < -TOL_EARLY:
        fail(f"{name}: a message was delivered before its modelled time (up {up.min():.6f}, down {down.min():.6f} s)")
    med = float(np.median(down))
    if med > TOL_LATE_MEDIAN:
        fail(f"{name}: downlink delivery {med * 1e3:.3f} ms later than the model (median), tolerance {TOL_LATE_MEDIAN * 1e3} ms")
    print(f"ok   {name}: link emulation: {len(st)} messages each way; downlink lateness median {med * 1e6:.0f} us, "
          f"max {down.max() * 1e6:.0f} us; uplink never early (min {up.min() * 1e6:.0f} us)")


def check_compute_profile(name, t):
    """every step's device compute took at least the profile's prediction (padding), the trace
    records measured and predicted times, and profile_exceeded counts the steps where the real
    compute was slower than the profile"""
    st, dv = t["steps"], t["devices"]
    pin, pout = st["dev_in_pred_s"], st["dev_out_pred_s"]
    took_in = st["t_up_send"] - st["t_start"]
    took_out = st["t_end"] - st["t_down_ready"]
    if not (pin > 0).all() or not (pout > 0).all():
        fail(f"{name}: compute profile predictions missing from the trace")
    elif (took_in < np.maximum(pin, st["dev_in_s"]) - 1e-4).any() or (took_out < np.maximum(pout, st["dev_out_s"]) - 1e-4).any():
        fail(f"{name}: a step took less than the profile predicts (no padding)")
    else:
        exceeded = int(((st["dev_in_s"] > pin).sum() + (st["dev_out_s"] > pout).sum()))
        if exceeded != int(dv["profile_exceeded"].sum()):
            fail(f"{name}: profile_exceeded {int(dv['profile_exceeded'].sum())} != steps slower than the profile {exceeded}")
        else:
            print(f"ok   {name}: compute profile: {len(st)} steps padded to the prediction (input submodel median "
                  f"{np.median(pin) * 1e3:.2f} ms predicted vs {np.median(st['dev_in_s']) * 1e3:.2f} ms measured); "
                  f"{exceeded} pieces where real compute exceeded the profile, as recorded")


def expect_error(name, n, args, needle, trace=None):
    rc, out = mpirun(n, args, timeout=120)
    if rc == "timeout":
        fail(f"{name}: hung (killed after 120 s)")
    elif rc == 0:
        fail(f"{name}: exit status 0, expected an error")
    elif needle.lower() not in out.lower():
        fail(f"{name}: exit {rc} but the output lacks '{needle}':\n{out[-2000:]}")
    else:
        line = next((l for l in out.splitlines() if needle.lower() in l.lower()), "")
        print(f"ok   {name}: exit {rc}: {line.strip()[:160]}")
    if trace and os.path.exists(trace):
        probs = check_trace_cli(trace, schema_only=True)
        if probs:
            fail(f"{name}: the aborted run's trace is unreadable or malformed: {probs[:3]}")
        else:
            print(f"ok   {name}: its trace is readable (status: {check_trace.load_trace(trace)['attrs']['status']})")


# ---- 1-3: correct runs -------------------------------------------------------------------------
check_run("np2_fp32", 1, 1, 2, 2, wire="fp32", chunk=8)
t = check_run("np3_fp16_links", 2, 1, 1, 4, wire="fp16", chunk=16, emulate="on", links=["wifi", "4g"])
if t is not None:
    check_links("np3_fp16_links", t)
check_run("np4_2cloud", 2, 2, 5, 5, wire="fp16", chunk=4)
# the backend table: cuda asked for on a machine without a GPU (or a build without CUDA) falls back to
# the CPU with a message; the trace records which backend ran; tokens stay exact either way on the CPU
cfg = write_cfg("np2_backend_cuda", 1, 1, 2, 2, cloud_extra="backend = cuda\n")
rc, out = mpirun(2, ["--config", cfg])
if rc != 0:
    fail(f"np2_backend_cuda: exit {rc}\n{out[-2000:]}")
else:
    attrs = check_trace.load_trace(os.path.join(tmp, "np2_backend_cuda.h5"))["attrs"]
    cb = attrs.get("cloud_backend", "")
    line = next((l for l in out.splitlines() if l.startswith("cloud backend:")), "")
    if cb.startswith("cuda"):
        print(f"ok   np2_backend_cuda: a GPU is present: {line[:160]}")
    elif not (cb.startswith("cpu") and "backend cuda requested but" in out and "backend cuda requested but" in cb):
        fail(f"np2_backend_cuda: no fallback message (output: {line!r}, trace cloud_backend: {cb!r})")
    else:
        print(f"ok   np2_backend_cuda: fell back to the CPU with a message: "
              f"{next(l for l in out.splitlines() if 'requested but' in l)[:170]}")
# tensor parallelism: cloud groups of 3 ranks, each holding 1/3 of the heads and FFN features of
# every layer; mode exact (all-gathers) gives the monolithic engine's tokens; 2 groups of 3 ranks
# serving 3 devices (the second group serves device 1)
check_run("np5_tp3", 2, 3, 2, 2, wire="fp32", chunk=8, cloud_extra="tp = 3\n")
if not QUICK:
    check_run("np9_tp3x2", 3, 6, 5, 5, wire="fp16", chunk=16, cloud_extra="tp = 3\n")
# mode allreduce (Megatron-LM): runs and its trace checks; its tokens follow the model to rounding only,
# so how many equal the monolithic engine's is reported, not required
cfg = write_cfg("np5_tp3_allreduce", 2, 3, 2, 2, cloud_extra="tp = 3\ntp_mode = allreduce\n")
n_fail = len(failures)
tr = run_checked("np5_tp3_allreduce", cfg, 5, 2)
if tr is not None and len(failures) == n_fail:
    tk, same = tr["tokens"], []
    for d in range(2):
        prompt = PROMPTS[d]
        if prompt not in refs:
            refs[prompt] = reference_ids(prompt)
        sel = tk[tk["device"] == d]
        got = [int(x) for x in sel["token"][np.argsort(sel["index"])]]
        same.append(next((i for i, (x, y) in enumerate(zip(got, refs[prompt])) if x != y), len(got)))
    bat = tr["batches"]
    gs = bat["group_s"]
    if not (gs > 0).all() or not (gs <= bat["t_end"] - bat["t_start"]).all():
        fail(f"np5_tp3_allreduce: /batches group_s should be > 0 and within each batch: {gs[:8]}")
    print(f"ok   np5_tp3_allreduce: runs, trace checks (cloud_tp {tr['attrs']['cloud_tp']}); tokens equal to the "
          f"monolithic engine's before index {same} of {MAX_TOKENS} (rounding, see src/engine/tp.h); group broadcast "
          f"{np.median(gs) * 1e3:.3f} ms median of {np.median(bat['t_end'] - bat['t_start']) * 1e3:.3f} ms per step")
# the shipped 30-device configuration (configs/paper30.ini: HAT, 31 ranks, fp16 on the wire, Wi-Fi/5G/4G
# links emulated), shortened: every device's tokens must equal the monolithic model with fp16 rounding
# at the same cuts, and the cloud must have batched several devices' work into one pass
with open(os.path.join(SRC, "configs", "paper30.ini")) as f:
    p30 = f.read()
subs = {"path": MODEL, "trace": os.path.join(tmp, "paper30.h5"), "max_tokens": str(MAX_TOKENS), "adapter": "identity",
        "links": os.path.join(SRC, "configs", "links.ini"), "devices": os.path.join(SRC, "configs", "devices.ini"),
        "prompts": os.path.join(SRC, "configs", "prompts.txt")}
p30 = "\n".join(f"{l.split('=')[0].strip()} = {subs[l.split('=')[0].strip()]}"
                 if "=" in l and l.split("=")[0].strip() in subs else l for l in p30.splitlines()) + "\n"
cfg30 = os.path.join(tmp, "paper30.ini")
with open(cfg30, "w") as f:
    f.write(p30)
tr = run_checked("paper30", cfg30, 31, 30)
if tr is not None:
    with open(os.path.join(SRC, "configs", "prompts.txt")) as f:
        plines = [l.rstrip("\n").replace("\\n", "\n") for l in f if l.strip()]
    bad = 0
    for d in range(30):
        prompt = plines[d % len(plines)]
        key = (prompt, "fp16", 8, 8)
        if key not in refs:
            refs[key] = reference_ids(prompt, "fp16", 8, 8)
        sel = tr["tokens"][tr["tokens"]["device"] == d]
        got = [int(x) for x in sel["token"][np.argsort(sel["index"])]]
        if got != refs[key]:
            bad += 1
            fail(f"paper30: device {d} tokens {got} != monolithic with fp16 rounding at the cuts {refs[key]}")
    bat = tr["batches"]
    if int(bat["n_dev"].max()) < 2:
        fail("paper30: the cloud never batched two devices")
    if not bad:
        print(f"ok   paper30: configs/paper30.ini shortened to {MAX_TOKENS} tokens (identity adapter): 31 ranks, every "
              f"device's tokens equal the monolithic model with fp16 at the cuts; {len(bat)} cloud passes, up to "
              f"{int(bat['n_dev'].max())} devices and {int(bat['n_tok'].max())} tokens in one; backend "
              f"'{tr['attrs'].get('cloud_backend', '?')[:40]}'")
t = check_run("np2_compute", 1, 1, 2, 2, wire="fp32", chunk=8, compute="raspberry-pi-5")
if t is not None:
    check_compute_profile("np2_compute", t)
check_run("np5_4dev", 4, 1, 3, 2, wire="fp32", chunk=5, emulate="on", links=["ethernet", "5g"], stagger=0.05)
if not QUICK:
    check_run("np5_2cloud_3dev", 3, 2, 10, 10, wire="fp16", chunk=32)
    check_run("np3_bf16", 2, 1, 2, 2, wire="bf16", chunk=8)

# ---- HAT: drafting + verification is lossless at temperature 0 ---------------------------------
# gamma in {1, 2, 4, 8}, 1-4 devices, several splits. The identity adapter (plain layer skipping)
# drafts poorly, so most rounds reject and roll back; a quickly fitted linear adapter accepts
# more, so whole rounds are accepted and the bonus token is used: both paths are exercised.
fitted = os.path.join(tmp, "a2b2.adapter")
cal_prompts = os.path.join(tmp, "calibration_prompts.txt")
with open(os.path.join(SRC, "configs", "calibration_prompts.txt")) as src, open(cal_prompts, "w") as dst:
    dst.writelines([l for l in src if l.strip()][:6])
cal = subprocess.run([HAT, "calibrate", "--model", MODEL, "--split", "2,2", "--form", "linear",
                      "--prompts", cal_prompts, "--gen", "24", "--holdout", "1", "--threads", "2", "--out", fitted],
                     env=ENV, capture_output=True, text=True, timeout=600)
if cal.returncode != 0:
    fail(f"hat calibrate failed: {cal.stdout[-1500:]}{cal.stderr[-1500:]}")
    fitted = "identity"
check_run("hat_g1", 1, 1, 2, 2, chunk=8, mode="hat", hat={"gamma": 1, "adapter": fitted})
check_run("hat_g2_links", 2, 1, 2, 2, chunk=16, emulate="on", links=["wifi", "4g"], mode="hat",
          hat={"gamma": 2, "adapter": fitted})
check_run("hat_g4_4dev", 4, 1, 3, 2, chunk=5, mode="hat", hat={"gamma": 4, "adapter": "identity"}, stagger=0.03)
check_run("hat_g8_2cloud", 3, 2, 2, 2, chunk=8, mode="hat", hat={"gamma": 8, "adapter": fitted})
check_run("hat_adaptive", 2, 1, 1, 4, chunk=8, emulate="on", links=["ethernet", "4g"], mode="hat",
          hat={"gamma": 2, "adaptive": "on", "gamma_min": 1, "gamma_max": 6, "adapter": "identity"})
check_run("hat_fp16", 2, 1, 2, 2, wire="fp16", chunk=8, mode="hat", hat={"gamma": 4, "adapter": fitted})
check_run("hat_tp3", 2, 3, 2, 2, chunk=8, mode="hat", hat={"gamma": 4, "adapter": fitted}, cloud_extra="tp = 3\n")
# temperature > 0: runs, and the trace is consistent (the distribution test is test_speculate)
cfg = write_cfg("hat_temp", 2, 1, 2, 2, mode="hat", hat={"gamma": 3, "adapter": fitted},
                dev_keys={0: "temp = 0.8\ntop_k = 40\n", 1: "temp = 1.0\n"})
n_fail = len(failures)
if run_checked("hat_temp", cfg, 3, 2) is not None and len(failures) == n_fail:
    print("ok   hat_temp: temperature 0.8 / 1.0 with drafting runs and its trace checks")
# an adapter is refused for another split, and for another model file
if fitted != "identity":
    cfg = write_cfg("hat_bad_split", 1, 1, 3, 2, mode="hat", hat={"adapter": fitted})
    expect_error("adapter for another split", 2, ["--config", cfg], "split")
    other = os.path.join(tmp, "other_model.gguf")
    with open(MODEL, "rb") as src, open(other, "wb") as dst:
        data = bytearray(src.read())
        data[-1] ^= 0x01   # last byte of the tensor data: still a loadable model, another file
        dst.write(data)
    cfg = write_cfg("hat_bad_model", 1, 1, 2, 2, mode="hat", hat={"adapter": fitted}, model=other)
    expect_error("adapter for another model", 2, ["--config", cfg], "model")
    os.remove(other)

# ---- 7: chunking policies ------------------------------------------------------------------------
import json  # noqa: E402
import re  # noqa: E402
with open(os.path.join(SRC, "configs", "prompts_long.jsonl")) as f:
    LONG = json.loads(f.readline())["prompt"]   # the ~128-token one: a multi-line license text
chunk_prompts = [LONG, PROMPTS[0], PROMPTS[2]]
chunk_file = os.path.join(tmp, "chunk_prompts.jsonl")
with open(chunk_file, "w") as f:
    for pr in chunk_prompts:
        f.write(json.dumps({"prompt": pr}) + "\n")


def check_chunking(name, policy, mode, n_dev=3, hat=None, emulate="on", stall=0, order=None):
    tx = f"chunking = {policy}\n" + (f"max_stall_ms = {stall}\n" if stall else "")
    cfg = write_cfg(name, n_dev, 1, 2, 2, chunk=8, emulate=emulate, links=["4g", "wifi", "5g"], mode=mode, hat=hat,
                    transport_extra=tx, prompts_file=chunk_file,
                    cloud_extra=f"prefill_order = {order}\n" if order else "")
    n_fail = len(failures)
    t = run_checked(name, cfg, n_dev + 1, n_dev)
    if t is None:
        return
    tok, dv, st = t["tokens"], t["devices"], t["steps"]
    sizes = []
    for d in range(n_dev):
        pr = chunk_prompts[d % len(chunk_prompts)]
        if pr not in refs:
            refs[pr] = reference_ids(pr)
        sel = tok[tok["device"] == d]
        got = [int(x) for x in sel["token"][np.argsort(sel["index"])]]
        if got != refs[pr]:
            fail(f"{name}: device {d} tokens {got} != monolithic {refs[pr]}")
        row = dv[dv["device"] == d][0]
        if int(row["chunking"]) != ["off", "fixed", "dynamic"].index(policy):
            fail(f"{name}: device {d}: /devices chunking {int(row['chunking'])}, configured {policy}")
        pre = st[(st["device"] == d) & (st["kind"] == 0)]
        sizes.append("+".join(str(int(x)) for x in pre["n_tok"][np.argsort(pre["seq"])]))
    if len(failures) == n_fail:
        print(f"ok   {name}: {mode}, chunking {policy}{f', max_stall_ms {stall}' if stall else ''}"
              f"{f', prefill_order {order}' if order else ''}: tokens equal the "
              f"monolithic engine; chunks {' | '.join(sizes)}")


for mode, hat in [("ushape", None), ("hat", {"gamma": 3, "adapter": "identity"})]:
    for policy in ("off", "fixed", "dynamic"):
        check_chunking(f"chunk_{mode}_{policy}", policy, mode, hat=hat)
check_chunking("chunk_dynamic_stall", "dynamic", "ushape", n_dev=3, stall=60)   # the stall-bounded schedule
check_chunking("chunk_fixed_fair", "fixed", "ushape", n_dev=3, order="fair")   # chunks of every prompt in a pass
for name, tx, needle in [("chunking sometimes", "chunking = sometimes\n", "chunking = 'sometimes'"),
                         ("negative max_stall_ms", "max_stall_ms = -5\n", "max_stall_ms = '-5'"),
                         ("prefill_order lifo", "", "prefill_order = 'lifo'")]:
    cfg = write_cfg("bad_" + name.replace(" ", "_"), 2, 1, 2, 2, transport_extra=tx,
                    cloud_extra="prefill_order = lifo\n" if "lifo" in name else "")
    expect_error(name, 3, ["--config", cfg], needle)

# ---- 8: timing at the modelled scale (src/timing/cost_model.h, src/run/timing_run.h) ---------------
def check_timing(name, shape=None, scale=20, n_dev=4):
    """Jetson devices and the paper's 8x A6000 server profile, the run clock dilated: tokens equal the
    monolithic engine; every cloud pass carries its profile's prediction and was padded to it; the
    links charge the modelled hidden size; the distorted steps are counted as the trace shows them"""
    run_extra = f"time_scale = {scale}\n" + (f"timing_shape = {shape}\n" if shape else "")
    cfg = write_cfg(name, n_dev, 1, 2, 2, chunk=8, emulate="on", links=["wifi", "5g", "4g"], mode="hat",
                    hat={"gamma": 2, "adapter": "identity"}, compute="jetson-orin-nano-8gb",
                    cloud_extra="compute = a6000-8x\n", stagger=0.05,
                    extra="", transport_extra="")
    with open(cfg) as f:
        text = f.read().replace("[run]\n", "[run]\n" + run_extra, 1)
    with open(cfg, "w") as f:
        f.write(text)
    n_fail = len(failures)
    t = run_checked(name, cfg, n_dev + 1, n_dev)
    if t is None:
        return
    for d in range(n_dev):
        pr = PROMPTS[d % len(PROMPTS)]
        if pr not in refs:
            refs[pr] = reference_ids(pr)
        sel = t["tokens"][t["tokens"]["device"] == d]
        got = [int(x) for x in sel["token"][np.argsort(sel["index"])]]
        if got != refs[pr]:
            fail(f"{name}: device {d} tokens {got} != monolithic {refs[pr]}")
    b, st, at = t["batches"], t["steps"], t["attrs"]
    if not (b["profile_s"] > 0).all():
        fail(f"{name}: a cloud pass without its profile's prediction")
    hidden = 4096 if shape == "llama-2-7b" else 576
    if int(at["timing_hidden"]) != hidden:
        fail(f"{name}: trace timing_hidden {at['timing_hidden']}, expected {hidden}")
    rows = st["n_tok"].astype(np.int64)
    want = 96 + rows * hidden * 4   # WIRE_HEADER_BYTES + rows x hidden x fp32: what the link charged
    pre = st["kind"] == 0
    if (st["up_bytes"][pre] != want[pre]).any():
        fail(f"{name}: prefill up_bytes {st['up_bytes'][pre][:3]} != header + rows x {hidden} x 4 {want[pre][:3]}")
    dist = int(b["distorted"].sum())
    if len(failures) == n_fail:
        print(f"ok   {name}: {n_dev} devices (jetson-orin-nano-8gb) + a6000-8x, shape {shape or 'real'}, "
              f"time_scale {scale}: tokens equal the monolithic engine; {len(b)} cloud passes padded to the profile "
              f"(median {np.median(b['profile_s']) * 1e3:.2f} ms modelled, {np.median(b['real_s']) * 1e3:.2f} ms real "
              f"run-clock), {dist} distorted; device pieces distorted {int(t['devices']['profile_exceeded'].sum())}; "
              f"links charge {hidden}-wide rows")


check_timing("timing_a6000_real", None, scale=20)
check_timing("timing_a6000_7b", "llama-2-7b", scale=20)
bad_shapes = os.path.join(tmp, "shapes_bad.ini")
with open(bad_shapes, "w") as f:
    f.write("[tiny-4]\nlayers = 4\nhidden = 64\nffn = 128\nheads = 4\nkv_heads = 4\nvocab = 100\n"
            "tied_embeddings = 1\nbytes_per_weight = 2\nsource = a test shape\n")
bad_servers = os.path.join(tmp, "servers_bad.ini")
with open(bad_servers, "w") as f:
    f.write("[box]\nmem_bw_gbs = 768\nefficiency = 0.8\ntflops = 150\nflops_efficiency = 0.6\nmem_gb = 48\n"
            "link_gbs = 20\nlink_latency_us = 3\nsource = lacks gpus\n")
for name, run_x, cloud_x, prof_x, compute, needle in [
        ("unknown server profile", "", "compute = dgx-9000\n", "", "none", "compute = 'dgx-9000'"),
        ("unknown shape", "timing_shape = gpt-9\n", "", "", "none", "timing_shape = 'gpt-9'"),
        ("shape maps to zero device layers", f"timing_shape = tiny-4\n", "", f"shapes = {bad_shapes}\n", "none",
         "a device would hold no layer"),
        ("server profile missing a key", "", "compute = box\n", f"servers = {bad_servers}\n", "none",
         "lacks the required key 'gpus'"),
        ("device memory too small", "timing_shape = llama-2-70b\n", "", "", "jetson-orin-nano-8gb", "needs"),
        ("time_scale below 1", "time_scale = 0.5\n", "", "", "none", "time_scale = '0.5'")]:
    cfg = write_cfg("bad_" + name.replace(" ", "_"), 2, 1, 2, 2, cloud_extra=cloud_x, compute=compute)
    with open(cfg) as f:
        text = f.read().replace("[run]\n", "[run]\n" + run_x, 1)
    for line in prof_x.splitlines():   # the test's own profiles file in place of the shipped one
        key = line.split("=")[0].strip()
        text = re.sub(rf"^{key} = .*$", line, text, count=1, flags=re.M)
    with open(cfg, "w") as f:
        f.write(text)
    expect_error(name, 3, ["--config", cfg], needle)

# ---- 4: bad input ------------------------------------------------------------------------------
# a command-line error: every rank parses the same argv; all end with status 2, rank 0 says it once
for name, args, needle in [("unknown option", ["--config", os.path.join(tmp, "np2_fp32.ini"), "--bogus"],
                            "unknown or incomplete option '--bogus'"),
                           ("missing option argument", ["--trace"], "option '--trace' needs an argument"),
                           ("no --config", [], "--config FILE is required")]:
    rc, out = mpirun(3, args, timeout=120)
    if rc != 2 or out.count(needle) != 1:
        fail(f"command line, {name}: exit {rc} (expected 2), message {out.count(needle)} times (expected 1):\n{out[-2000:]}")
    else:
        print(f"ok   command line, {name}: exit 2 on 3 ranks, one message: {needle}")
cfg = write_cfg("bad_np", 2, 1, 2, 2)
expect_error("rank count", 2, ["--config", cfg], "ranks")
cfg = write_cfg("bad_split", 1, 1, 20, 15)
expect_error("split out of range", 2, ["--config", cfg], "split")
cfg = write_cfg("bad_model", 1, 1, 2, 2, model=os.path.join(tmp, "no_such_model.gguf"))
expect_error("missing model", 2, ["--config", cfg], "no_such_model.gguf")
cfg = write_cfg("bad_key", 1, 1, 2, 2, extra="[fault]\nkindd = none\n")
expect_error("unknown key", 2, ["--config", cfg], "kindd")
cfg = write_cfg("bad_backend", 1, 1, 2, 2, cloud_extra="backend = tpu\n")
expect_error("unknown backend", 2, ["--config", cfg], "tpu")
cfg = write_cfg("bad_tp_ranks", 1, 3, 2, 2, cloud_extra="tp = 2\n")
expect_error("cloud ranks not a multiple of tp", 4, ["--config", cfg], "not a multiple")
cfg = write_cfg("bad_tp_heads", 1, 2, 2, 2, cloud_extra="tp = 2\n")
expect_error("tp that does not divide the heads", 3, ["--config", cfg], "9 query heads")
# a JSON-lines prompts file broken on its line 3: every rank reads it and ends, the message names file:line
bad_jsonl = os.path.join(tmp, "bad_prompts.jsonl")
with open(bad_jsonl, "w") as f:
    f.write('{"prompt": "fine", "source": "test"}\n\n{"prompt": "unterminated}\n')
cfg = write_cfg("bad_jsonl", 2, 1, 2, 2)
with open(cfg) as f:
    text = f.read().replace("[devices]\n", f"[devices]\nprompts = {bad_jsonl}\n", 1)
with open(cfg, "w") as f:
    f.write(text)
expect_error("broken .jsonl prompts file", 3, ["--config", cfg], bad_jsonl + ":3: not a JSON object")
for kind, needle in [("truncated_message", "truncated"), ("bad_version", "version"),
                     ("token_ids", "never token ids"), ("bad_checksum", "checksum")]:
    cfg = write_cfg("fault_" + kind, 1, 1, 2, 2, extra=f"[fault]\nkind = {kind}\ndevice = 0\nat_seq = 1\n")
    expect_error("fault " + kind, 2, ["--config", cfg], needle, trace=os.path.join(tmp, f"fault_{kind}.h5"))
# an existing trace is refused and left untouched
existing = os.path.join(tmp, "np2_fp32.h5")
if os.path.exists(existing):
    h = hashlib.sha256(open(existing, "rb").read()).hexdigest()
    expect_error("existing trace", 2, ["--config", os.path.join(tmp, "np2_fp32.ini")], "exists")
    if hashlib.sha256(open(existing, "rb").read()).hexdigest() != h:
        fail("existing trace: the file was modified")

# a trace path that is one of the run's inputs (the config itself; a hard link of the prompts file)
# is refused even with --overwrite, and the input is left as it was; an over-long --trace refused
inp_cfg = write_cfg("trace_is_input", 1, 1, 2, 2)
cfg_hash = hashlib.sha256(open(inp_cfg, "rb").read()).hexdigest()
expect_error("trace = the config", 2, ["--config", inp_cfg, "--trace", inp_cfg, "--overwrite"], "is the run's config file")
if hashlib.sha256(open(inp_cfg, "rb").read()).hexdigest() != cfg_hash:
    fail("trace = the config: the config was modified")
link = os.path.join(tmp, "prompts_link.txt")
os.link(chunk_file, link)
pr_cfg = write_cfg("trace_is_prompts", 1, 1, 2, 2, prompts_file=chunk_file)
pr_hash = hashlib.sha256(open(chunk_file, "rb").read()).hexdigest()
expect_error("trace = a hard link of the prompts", 2, ["--config", pr_cfg, "--trace", link, "--overwrite"],
             "is the run's [devices] prompts")
if hashlib.sha256(open(chunk_file, "rb").read()).hexdigest() != pr_hash:
    fail("trace = the prompts: the prompts file was modified")
expect_error("over-long --trace", 2, ["--config", inp_cfg, "--trace", os.path.join(tmp, "x" * 600 + ".h5")],
             "a path of")

# ---- 5: the cloud-only baseline ---------------------------------------------------------------
# mode = cloud-only: the device sends its prompt's token ids, the cloud runs the whole model and
# streams every token back. No hidden state crosses the network, so whatever the wire dtype the
# tokens equal the monolithic engine's (greedy), or `hat generate` with the device's sampler
# settings and seed (seed + 1000003 * device); the trace says it is not private, a split run's
# that it is; its token messages are validated (an id outside the vocabulary is refused), and
# token ids stay refused in the split modes (the fault token_ids case above).
def cloudonly_cfg(name, n_dev, n_cloud=1, sampled=None, **kw):
    """write_cfg's config with [run] mode = cloud-only; sampled: {device: (temp, top_k)}"""
    path = write_cfg(name, n_dev, n_cloud, 2, 2, **kw)
    with open(path) as f:
        text = f.read().replace("mode = ushape\n", "mode = cloud-only\n", 1)
    for d, (temp, top_k) in (sampled or {}).items():   # into the device's own section (no duplicates)
        text = text.replace(f"[device.{d}]\n", f"[device.{d}]\ntemp = {temp}\ntop_k = {top_k}\n", 1)
    with open(path, "w") as f:
        f.write(text)
    return path


def sampled_ids(prompt, temp, top_k, seed):
    """`hat generate` ids with a device's sampler settings (top_p 1, the config default) and seed"""
    p = subprocess.run([HAT, "generate", "--model", MODEL, "--chat", prompt, "--max-tokens", str(MAX_TOKENS),
                        "--print-ids", "--quiet", "--ctx", "512", "--threads", "1", "--temp", str(temp),
                        "--top-k", str(top_k), "--top-p", "1", "--seed", str(seed)],
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    line = [l for l in p.stdout.splitlines() if l.startswith("ids:")][0]
    return [int(x) for x in line[4:].split()]


def check_cloudonly(name, n_dev, n_cloud=1, sampled=None, **kw):
    """sampled: {device: (temp, top_k)} for devices that sample; the others are greedy"""
    n_fail = len(failures)
    sampled = sampled or {}
    t = run_checked(name, cloudonly_cfg(name, n_dev, n_cloud, sampled, **kw), n_dev + n_cloud, n_dev)
    if t is None:
        return None
    privacy = t["attrs"].get("privacy", "")
    if not privacy.startswith("NOT private: token ids"):
        fail(f"{name}: trace attribute privacy is {privacy!r}")
    tok = t["tokens"]
    for d in range(n_dev):
        prompt = PROMPTS[d % len(PROMPTS)]
        if d in sampled:
            want, what = sampled_ids(prompt, *sampled[d], seed=7 + 1000003 * d), "hat generate with its sampler and seed"
        else:
            if prompt not in refs:
                refs[prompt] = reference_ids(prompt)
            want, what = refs[prompt], "the monolithic engine"
        sel = tok[tok["device"] == d]
        got = [int(x) for x in sel["token"][np.argsort(sel["index"])]]
        if got != want:
            fail(f"{name}: device {d} tokens {got} != {what} {want}")
    # the cloud ran the whole model through the backend table, which the trace names; cuda asked
    # for falls back to the CPU with a note (no GPU, or the CUDA backend runs layers only)
    cb = t["attrs"].get("cloud_backend", "")
    plan = f"embedding + layers [0, {int(t['attrs']['n_layer'])}) + head"
    if not (cb.startswith("cpu") and plan in cb):
        fail(f"{name}: trace attribute cloud_backend {cb!r} does not name the backend table's whole-model plan")
    if "backend = cuda" in kw.get("cloud_extra", "") and "backend cuda requested but" not in cb:
        fail(f"{name}: backend cuda asked for, but the trace's cloud_backend has no fallback note: {cb!r}")
    st = t["steps"]   # only ids went up: a header + 4 bytes per prompt token, nothing while decoding
    want_up = np.where(st["kind"] == 0, 96 + 4 * st["n_tok"].astype(np.int64), 0)
    if not np.array_equal(st["up_bytes"].astype(np.int64), want_up):
        fail(f"{name}: uplink bytes are not those of token ids only")
    if len(failures) == n_fail:
        print(f"ok   {name}: cloud-only, {n_dev} devices, {n_cloud} cloud, chunk {kw.get('chunk', 8)}, links "
              f"{kw.get('emulate', 'off')}: tokens equal the monolithic engine"
              + (f" (devices {sorted(sampled)} sampling: equal to hat generate with their seeds)" if sampled else "")
              + f"; trace: {privacy!r}; cloud_backend {cb[:90]!r}")
    return t


t = check_cloudonly("co_links", 2, wire="fp16", chunk=8, emulate="on", links=["wifi", "4g"])
if t is not None:
    # No message early. Lateness is bounded looser than check_links does: here the cloud computes
    # without a pause (it streams tokens) while both devices poll, and on a loaded 2-core machine
    # that alone makes deliveries a few ms late; under the wifi one-way latency (8 ms), so a
    # message held for an extra link delay would still fail.
    st = t["steps"]
    up = st["t_cloud_ready"] - st["t_up_send"] - st["up_model_s"]
    down = st["t_down_ready"] - st["t_down_send"] - st["down_model_s"]
    med = float(np.median(down))
    if up.min() < -TOL_EARLY or down.min() < -TOL_EARLY:
        fail(f"co_links: a message was delivered before its modelled time (up {up.min():.6f}, down {down.min():.6f} s)")
    elif med > 8e-3 or not (st["down_model_s"] > 0).all():
        fail(f"co_links: downlink {med * 1e3:.3f} ms later than the model (median), or a message not delayed at all")
    else:
        print(f"ok   co_links: link emulation: {len(st)} messages down, none early; lateness median {med * 1e6:.0f} us, "
              f"max {down.max() * 1e6:.0f} us")
check_cloudonly("co_off", 2, chunk=5, stagger=0.05, sampled={1: (0.8, 40)})
check_cloudonly("co_backend_cuda", 1, cloud_extra="backend = cuda\n")
check_cloudonly("co_chunking_off", 2, transport_extra="chunking = off\n")   # the whole prompt's ids at once
cfg = cloudonly_cfg("co_dynamic", 1, transport_extra="chunking = dynamic\n")
expect_error("cloud-only with dynamic chunking", 2, ["--config", cfg], "cloud-only baseline sends token ids")
if not QUICK:
    check_cloudonly("co_2cloud_3dev", 3, n_cloud=2, chunk=16)
if os.path.exists(os.path.join(tmp, "np2_fp32.h5")):
    privacy = check_trace.load_trace(os.path.join(tmp, "np2_fp32.h5"))["attrs"].get("privacy", "")
    if privacy != "private: only hidden states leave the device":
        fail(f"np2_fp32: trace attribute privacy is {privacy!r}")
    else:
        print(f"ok   np2_fp32: trace attribute privacy {privacy!r}")
cfg = cloudonly_cfg("co_fault_token_ids", 1, extra="[fault]\nkind = token_ids\ndevice = 0\nat_seq = 1\n")
expect_error("cloud-only fault token_ids (an id outside the vocabulary)", 2, ["--config", cfg], "out of the vocabulary",
             trace=os.path.join(tmp, "co_fault_token_ids.h5"))

print(f"{'FAILED' if failures else 'all passed'}: {len(failures)} failure(s); files in {tmp}")
sys.exit(1 if failures else 0)
