#!/usr/bin/env python3
"""Load: many devices with short prompts against one cloud rank (default 64 devices, 65 ranks on
one machine), U-shape on the real model.

1. Every device is served to its end: the trace passes check_trace (every token accounted for),
   each device's tokens equal `hat generate`'s greedy tokens for its prompt, and the fairness of
   service is reported: decode tokens per second per device (min, median, max, min/max) and the
   spread of TTFT. Reported, not asserted: it is a timing on a shared machine.
2. With [run] peer_timeout_s = 5, one device rank is stopped (SIGSTOP) once the trace exists:
   the run ends (exit 1, no hang) with the trace naming that device lost, and every other device
   served to its end with the same tokens as in 1.

usage: test_load.py HAT MODEL SRC_DIR [--devices 64] [--max-tokens 12]
"""
import argparse
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

SRC = sys.argv[3] if len(sys.argv) > 3 else os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SRC, "analysis"))
import check_trace  # noqa: E402

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_pml="ob1",
           OMPI_MCA_btl="self,vader", OMPI_MCA_mpi_yield_when_idle="1", OMPI_MCA_rmaps_base_oversubscribe="1",
           OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
PROMPTS = ["What is the capital of France?", "Name three colours of the rainbow.", "Why is the sky blue?",
           "Write one sentence about the sea.", "How many legs does a spider have?", "What is two plus two?",
           "Say hello in Spanish.", "Who wrote Hamlet?"]
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg, flush=True)


def write_cfg(path, model, trace, prompts, n_dev, max_tokens, extra_run=""):
    with open(path, "w") as f:
        f.write(f"""[run]
mode = ushape
trace = {trace}
{extra_run}
[model]
path = {model}
ctx = 256
[split]
a = 2
b = 2
[transport]
chunking = fixed
chunk_tokens = 32
emulate_links = on
[cloud]
max_batch_tokens = 512
[profiles]
links = {os.path.join(SRC, 'configs', 'links.ini')}
devices = {os.path.join(SRC, 'configs', 'devices.ini')}
[devices]
count = {n_dev}
link = ethernet
prompts = {prompts}
chat = on
max_tokens = {max_tokens}
""")


def reference(hat, model, prompt, max_tokens):
    """`hat generate`'s greedy tokens (the whole model in one process)"""
    out = subprocess.run([hat, "generate", "--model", model, "--chat", prompt, "--max-tokens", str(max_tokens),
                          "--print-ids", "--quiet", "--ctx", "256", "--threads", "1"], env=ENV, capture_output=True,
                         text=True, timeout=300)
    for line in out.stdout.splitlines():
        if line.startswith("ids:"):
            return [int(x) for x in line[4:].split()]
    raise SystemExit(f"hat generate printed no ids line:\n{out.stdout[-1000:]}{out.stderr[-1000:]}")


def rank_of(pid):
    """the MPI rank of a running process, from the environment mpiexec gave it"""
    try:
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    except OSError:
        return None
    for kv in env:
        if kv.startswith(b"OMPI_COMM_WORLD_RANK="):
            return int(kv.split(b"=", 1)[1])
    return None


def run(hat, cfg, n_ranks, trace=None, stop_rank=None, delay=0.3, limit=600):
    """the run's exit status, output and seconds; with stop_rank, that rank gets SIGSTOP `delay` s
    after the trace is begun (<trace>.partial-<pid> appears) (and SIGCONT and SIGKILL once the run has ended)"""
    t0 = time.time()
    p = subprocess.Popen(["mpiexec", "-n", str(n_ranks), hat, "run", "--config", cfg], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                         start_new_session=True)
    stopped = None
    if stop_rank is not None:
        while p.poll() is None and not glob.glob(trace + ".partial-*") and time.time() - t0 < limit:
            time.sleep(0.05)
        time.sleep(delay)
        pids = subprocess.run(["pgrep", "-f", f"^{hat} run --config {cfg}"], capture_output=True, text=True).stdout.split()
        stopped = next((int(q) for q in pids if rank_of(q) == stop_rank), None)
        if stopped is None:
            fail(f"no process of rank {stop_rank} among {pids}")
        else:
            os.kill(stopped, signal.SIGSTOP)
    try:
        out, _ = p.communicate(timeout=max(1.0, limit - (time.time() - t0)))
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        rc = "hang"
    if stopped is not None:
        for s in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(stopped, s)
            except ProcessLookupError:
                pass
    return rc, out, time.time() - t0


def tokens_of(t, d):
    sel = t["tokens"][t["tokens"]["device"] == d]
    return [int(x) for x in sel["token"][np.argsort(sel["index"])]], sel


def fairness(t, n_dev):
    """decode tokens/s per device and TTFT per device (s)"""
    rates, ttft = [], []
    for d in range(n_dev):
        _, sel = tokens_of(t, d)
        ts = np.sort(sel["t_emit"])
        if len(ts) >= 2:
            rates.append((len(ts) - 1) / max(ts[-1] - ts[0], 1e-9))
        row = t["devices"][t["devices"]["device"] == d]
        if len(row):
            ttft.append(float(row["t_first"][0] - row["t_request"][0]))
    return np.array(rates), np.array(ttft)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hat")
    ap.add_argument("model")
    ap.add_argument("src")
    ap.add_argument("--devices", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=12)
    a = ap.parse_args()
    n = a.devices
    tmp = tempfile.mkdtemp(prefix="hat_load_")
    prompts = os.path.join(tmp, "prompts.txt")
    with open(prompts, "w") as f:
        f.write("\n".join(PROMPTS[d % len(PROMPTS)] for d in range(n)) + "\n")
    want = {p: reference(a.hat, a.model, p, a.max_tokens) for p in PROMPTS[:n]}

    trace = os.path.join(tmp, "load.h5")
    cfg = os.path.join(tmp, "load.ini")
    write_cfg(cfg, a.model, trace, prompts, n, a.max_tokens)
    rc, out, took = run(a.hat, cfg, n + 1)
    if rc != 0:
        fail(f"{n} devices: exit {rc} after {took:.0f} s:\n{out[-3000:]}")
        return 1
    if check_trace.main([trace]) != 0:
        fail(f"{n} devices: check_trace failed on {trace}")
    t = check_trace.load_trace(trace)
    wrong = [d for d in range(n) if tokens_of(t, d)[0] != want[PROMPTS[d % len(PROMPTS)]]]
    if wrong:
        d = wrong[0]
        fail(f"{n} devices: {len(wrong)} devices' tokens differ from hat generate, first device {d}: "
             f"{tokens_of(t, d)[0]} vs {want[PROMPTS[d % len(PROMPTS)]]}")
    rates, ttft = fairness(t, n)
    if len(rates) != n:
        fail(f"{n} devices: {len(rates)} devices decoded two tokens or more")
    else:
        print(f"ok   {n} devices on one cloud rank: exit 0 in {took:.0f} s, every device's {a.max_tokens} tokens equal "
              f"hat generate's; decode tokens/s per device min {rates.min():.2f} median {np.median(rates):.2f} "
              f"max {rates.max():.2f} (min/max {rates.min() / rates.max():.2f}); TTFT min {ttft.min():.2f} s median "
              f"{np.median(ttft):.2f} s max {ttft.max():.2f} s", flush=True)

    # one device stopped mid-run: the others finish
    stop_dev = n // 3
    trace2 = os.path.join(tmp, "load_stop.h5")
    cfg2 = os.path.join(tmp, "load_stop.ini")
    write_cfg(cfg2, a.model, trace2, prompts, n, a.max_tokens, extra_run="peer_timeout_s = 5")
    rc, out, took = run(a.hat, cfg2, n + 1, trace=trace2, stop_rank=stop_dev + 1)
    if rc in (0, "hang"):
        fail(f"{n} devices, device {stop_dev} stopped: exit {rc} after {took:.0f} s (want 1, the device lost)")
        return 1
    t = check_trace.load_trace(trace2)
    st = t["attrs"]["status"]
    lost = {int(r["device"]) for r in t["devices"] if int(r["lost"])}
    if check_trace.named_lost(st) != {stop_dev} or lost != {stop_dev}:
        fail(f"device {stop_dev} stopped: status {st!r}, /devices marks {sorted(lost)} lost")
    short = [d for d in range(n) if d != stop_dev and tokens_of(t, d)[0] != want[PROMPTS[d % len(PROMPTS)]]]
    if short:
        fail(f"device {stop_dev} stopped: {len(short)} other devices not served to their end, e.g. device {short[0]}: "
             f"{len(tokens_of(t, short[0])[0])} tokens")
    else:
        print(f"ok   device {stop_dev} of {n} stopped: exit {rc} after {took:.0f} s, status {st!r}; the other {n - 1} "
              f"devices served to their end with the same tokens", flush=True)
    print(f"{'all passed' if not failures else f'{len(failures)} FAILURE(S)'}; files in {tmp}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
