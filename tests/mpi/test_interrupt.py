#!/usr/bin/env python3
"""Interrupted runs keep what they measured: SIGINT to mpiexec at a random moment of a `hat run`
(U-shape, 2 devices, the real model, ~20 s of decoding), --repeats times (default 3; a thorough
check is --repeats 20), alternating a fresh trace path and --overwrite of an existing trace.

Each time: mpiexec exits non-zero within 15 s of the signal (no hang); the trace opens and says
`failed: interrupted ...` with failed_at_s set (or `complete`, if the run had ended); every
device's tokens are contiguous from index 0 (records are shipped in order) and reach within the
flush bound (1 s) plus one token interval of failed_at_s; with --overwrite the previous trace is
byte-for-byte intact and this run's partial trace lies beside it (<path>.partial-<pid>), named on
stderr; the trace passes check_trace --allow-failed. The signal comes 0-12 s after the trace
appears (the start-up is over), so a slow machine's start-up does not decide what is tested. Then one device rank alone gets SIGTERM: the run fails naming that rank, the trace is
closed the same way. Liveness ([run] peer_timeout_s = 5): SIGSTOP one device of three, and the
run ends (exit 1, no hang) with the trace naming the lost device, the other two served to their
end; SIGSTOP the cloud, and the devices report it and the run ends.

usage: test_interrupt.py HAT MODEL SRC_DIR [--repeats 3] [--seed 1]
"""
import argparse
import contextlib
import glob
import hashlib
import io
import os
import random
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
FLUSH_S = 1.0   # collector.h: COLLECTOR_FLUSH_S
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg, flush=True)


def write_cfg(path, model, trace, n_dev=2, extra_run=""):
    with open(path, "w") as f:
        f.write(f"""[run]
mode = ushape
trace = {trace}
{extra_run}
[model]
path = {model}
ctx = 1024
[split]
a = 2
b = 2
[transport]
wire_dtype = fp16
emulate_links = on
[profiles]
links = {os.path.join(SRC, 'configs', 'links.ini')}
devices = {os.path.join(SRC, 'configs', 'devices.ini')}
[devices]
count = {n_dev}
link = wifi
prompt = "Write a long story about a lighthouse keeper and the sea."
max_tokens = 400
""")


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def check_interrupted(name, trace, out, overwrite_hash=None):
    """the trace's state after an interrupt; overwrite_hash: the previous trace's hash (kept)"""
    path = trace
    if overwrite_hash is not None:
        if sha(trace) != overwrite_hash:
            fail(f"{name}: the previous trace was modified by the interrupted --overwrite")
            return
        parts = glob.glob(trace + ".partial-*")
        if len(parts) != 1:
            if "complete" not in out:
                fail(f"{name}: expected one partial trace beside {trace}, found {parts}")
            return
        if parts[0] not in out:
            fail(f"{name}: the partial trace {parts[0]} is not named on stderr")
        path = parts[0]
    try:
        t = check_trace.load_trace(path)
    except Exception as e:   # noqa: BLE001
        fail(f"{name}: {path} does not open: {e}")
        return
    st = t["attrs"]["status"]
    if st == "complete":
        print(f"ok   {name}: the run ended before the signal (complete)")
        return
    if not st.startswith("failed: interrupted") and "interrupted" not in st:
        fail(f"{name}: status {st!r}, expected 'failed: interrupted ...'")
        return
    fa = t["attrs"].get("failed_at_s")
    tok = t["tokens"]
    if fa is None:
        fail(f"{name}: no failed_at_s attribute")
        return
    worst = None
    for d in (0, 1):
        idx = np.sort(tok["index"][tok["device"] == d])
        if len(idx) and not np.array_equal(idx, np.arange(len(idx))):
            fail(f"{name}: device {d}'s tokens are not contiguous from 0: {idx[:10]}...")
        if len(idx) >= 2:
            te = np.sort(tok["t_emit"][tok["device"] == d])
            gap = float(np.max(np.diff(te)))
            lag = float(fa) - float(te[-1])
            if lag > FLUSH_S + gap + 0.25:
                fail(f"{name}: device {d}'s last recorded token is {lag:.2f} s before failed_at_s "
                     f"(bound {FLUSH_S} s + one token interval {gap:.2f} s)")
            worst = lag if worst is None else max(worst, lag)
    rc, report = check_trace_failed(path)
    if rc != 0:
        fail(f"{name}: check_trace --allow-failed:\n{report}")
    if not failures or not failures[-1].startswith(name):
        print(f"ok   {name}: status {st!r}, {len(tok)} tokens, last token {worst if worst is not None else float('nan'):.2f} s "
              f"before failed_at_s {float(fa):.2f}" + (" (the previous trace intact)" if overwrite_hash else ""),
              flush=True)


def check_trace_failed(path):
    """check_trace --allow-failed on a failed run's trace: (exit status, its report)"""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = check_trace.main([path, "--allow-failed"])
    return rc, out.getvalue()


def check_lost_marked(trace, t, st):
    """the stopped device's /devices row says lost, the others finished, /summary marks it and the
    whole trace passes check_trace --allow-failed"""
    named = check_trace.named_lost(st)
    dev = t["devices"]
    lost = {int(r["device"]) for r in dev if int(r["lost"])}
    if len(named) != 1 or lost != named or len(dev) != 3:
        fail(f"stopped device: status names {sorted(named)}, /devices marks {sorted(lost)} lost ({len(dev)} rows)")
        return False
    summ = t.get("summary")
    if summ is None or [int(x) for x in summ["lost"]] != [int(d in lost) for d in range(3)] + [1]:
        fail(f"stopped device: /summary lost column {None if summ is None else summ['lost'].tolist()}")
        return False
    rc, report = check_trace_failed(trace)
    if rc != 0:
        fail(f"stopped device: check_trace --allow-failed:\n{report}")
        return False
    return True


def wait_for_trace(p, trace, limit=120.0):
    """seconds until the run's trace (or, under --overwrite, its partial beside it) appears: the
    start-up is over (config, model, backend) and the run is measuring; None if it exits first"""
    t0 = time.time()
    before = set(glob.glob(trace + ".partial-*"))
    fresh = not os.path.exists(trace)
    while time.time() - t0 < limit and p.poll() is None:
        if (fresh and os.path.exists(trace)) or set(glob.glob(trace + ".partial-*")) - before:
            return time.time() - t0
        time.sleep(0.05)
    return None


def run_and_signal(hat, cfg, extra, delay, sig_target="mpiexec", n_ranks=3, sig=signal.SIGTERM, wait=15,
                   trace=None):
    """start the run; signal it `delay` s after its trace appears (trace given) or after the launch"""
    p = subprocess.Popen(["mpiexec", "-n", str(n_ranks), hat, "run", "--config", cfg] + extra, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if trace is not None and wait_for_trace(p, trace) is None:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return "no trace", out, 0.0
    time.sleep(delay)
    if sig_target == "mpiexec":
        p.send_signal(signal.SIGINT)
    else:   # one rank's process: "device" the last rank, "cloud" rank 0 (pgrep lists them in rank order)
        pids = subprocess.run(["pgrep", "-f", f"^{hat} run --config {cfg}"], capture_output=True, text=True).stdout.split()
        if pids:
            os.kill(int(pids[-1] if sig_target == "device" else pids[0]), sig)
    t0 = time.time()
    try:
        out, _ = p.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return "hang", out, time.time() - t0
    return p.returncode, out, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hat")
    ap.add_argument("model")
    ap.add_argument("src")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="hat_interrupt_")
    for i in range(args.repeats):
        trace = os.path.join(tmp, f"int_{i}.h5")
        cfg = os.path.join(tmp, f"int_{i}.ini")
        write_cfg(cfg, args.model, trace)
        old = None
        if i % 2 == 1:   # --overwrite of an existing trace: the previous run's
            prev = os.path.join(tmp, f"int_{i - 1}.h5")
            if os.path.exists(prev):
                with open(prev, "rb") as a, open(trace, "wb") as b:
                    b.write(a.read())
                old = sha(trace)
        delay = rng.uniform(0.0, 12.0)   # after the start-up; decoding ends 15-20 s later here
        rc, out, took = run_and_signal(args.hat, cfg, ["--overwrite"] if old else [], delay, trace=trace)
        name = f"interrupt {i} {delay:.1f} s after the start-up{' (--overwrite)' if old else ''}"
        if rc == "no trace":
            fail(f"{name}: the run wrote no trace within 120 s:\n{out[-1500:]}")
            continue
        if rc == "hang":
            fail(f"{name}: no exit within 15 s of SIGINT")
            continue
        if rc == 0:   # the run ended before the signal: a complete trace, which --overwrite may replace
            st = check_trace.load_trace(trace)["attrs"]["status"]
            if st != "complete":
                fail(f"{name}: exit 0 but the trace says {st!r}")
            else:
                print(f"ok   {name}: the run had finished (exit 0, trace complete)")
            continue
        check_interrupted(name, trace, out, old)
        if rc != 0:
            print(f"     exit {rc} {took:.1f} s after the signal")
    # one device rank alone: SIGTERM
    trace = os.path.join(tmp, "int_dev.h5")
    cfg = os.path.join(tmp, "int_dev.ini")
    write_cfg(cfg, args.model, trace)
    rc, out, took = run_and_signal(args.hat, cfg, [], 4.0, sig_target="device", trace=trace)
    if rc in ("hang", "no trace") or rc == 0:
        fail(f"device SIGTERM: exit {rc}")
    else:
        t = check_trace.load_trace(trace)
        st = t["attrs"]["status"]
        if not (st.startswith("failed: rank ") and "interrupted by SIGTERM" in st) or len(t["tokens"]) == 0:
            fail(f"device SIGTERM: status {st!r}, {len(t['tokens'])} tokens")
        else:
            print(f"ok   device SIGTERM: exit {rc} after {took:.1f} s; status {st!r}, {len(t['tokens'])} tokens kept")
    # liveness ([run] peer_timeout_s = 5): a stopped device is dropped, the others finish, the run
    # fails naming it; a stopped cloud is reported by the devices; neither hangs
    for who, needle in [("device", "lost: no message for 5 s"), ("cloud", "sent nothing, not even a keep-alive, for 5 s")]:
        trace = os.path.join(tmp, f"stop_{who}.h5")
        cfg = os.path.join(tmp, f"stop_{who}.ini")
        write_cfg(cfg, args.model, trace, n_dev=3, extra_run="peer_timeout_s = 5")
        rc, out, took = run_and_signal(args.hat, cfg, [], 4.0, sig_target=who, n_ranks=4, sig=signal.SIGSTOP, wait=45,
                                       trace=trace)
        if rc in ("hang", "no trace") or rc == 0 or needle not in out:
            fail(f"stopped {who}: exit {rc} after {took:.0f} s, output lacks {needle!r}:\n{out[-1500:]}")
            continue
        t = check_trace.load_trace(trace)
        st = t["attrs"]["status"]
        if needle not in st:
            fail(f"stopped {who}: trace status {st!r} lacks {needle!r}")
            continue
        per = {d: int((t["tokens"]["device"] == d).sum()) for d in range(3)}
        if who == "device" and not check_lost_marked(trace, t, st):
            continue
        print(f"ok   stopped {who}: exit {rc} {took:.0f} s after SIGSTOP; status {st!r}; tokens per device {per}")
    print(f"{'all passed' if not failures else f'{len(failures)} FAILURE(S)'}; files in {tmp}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
