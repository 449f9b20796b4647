#!/usr/bin/env python3
"""Speed of HAT's engine vs llama.cpp on the same GGUF, same threads, same prompt, in one run.

    .venv/bin/python experiments/bench_vs_llamacpp.py [--hat build/hat] [--model M.gguf]
        [--threads 2] [--prompt-tokens 256] [--gen 64] [--repeats 5] [--json OUT.json]

Both engines get the identical prompt token ids (made by llama.cpp's tokenizer from a fixed
paragraph, repeated and truncated to --prompt-tokens) and decode greedily for --gen tokens with
end-of-generation ignored.  Each repeat runs both engines back to back, alternating which goes
first, so slow drifts and noisy neighbours hit both alike; medians over the repeats are reported.

Prompt processing (pp) = prompt tokens / time of the one batched prompt pass.
Decode (tg) = single-token forwards / their time; both engines count the gen-1 forwards that follow
the prompt pass (the first generated token comes from the prompt pass's logits).

  HAT:       `hat generate --prompt-ids ... --max-tokens G --temp 0 --threads T --ignore-eos`,
             timings from its final stderr line `stats: key=value ...` (prompt_s, decode_s, ...);
             a fresh process per repeat, so the model load is excluded by HAT's own timers.
  llama.cpp: llama-cpp-python, one Llama() loaded once (load excluded), n_threads =
             n_threads_batch = T, flash attention disabled, f16 KV cache, n_batch = n_ubatch = 512;
             KV cleared before every repeat; timings from llama_perf_context (t_p_eval_ms/n_p_eval,
             t_eval_ms/n_eval), with perf_counter wall times kept alongside.

Noise control for shared machines: before each run the script waits (--quiet-wait) for a moment
when the CPUs are idle, measures during the run the share of CPU used by other processes
("foreign cpu", from /proc/stat minus our own CPU time), re-runs a contended run (--retries), and
besides the medians of all kept runs prints the medians over clean runs only.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")

PARAGRAPH = (
    "The committee met on a grey Tuesday morning to review the quarterly figures. Revenue had "
    "risen by four percent, mostly thanks to the new service contracts signed in the spring, "
    "while costs had stayed almost flat. The chair asked whether the warehouse in the north could "
    "be closed before winter, and the operations lead explained that two of the largest customers "
    "still depended on it for next-day delivery. After a long discussion about rents, staffing and "
    "fuel prices, they agreed to keep it open until March and to revisit the question with better "
    "data. The meeting ended with a short presentation on the training programme for new "
    "engineers, which had received unusually warm feedback from the participants. "
)

STATS_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)")


def machine_info():
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "logical_cpus": os.cpu_count()}
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        model, phys, flags = None, set(), ""
        cur = {}
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" not in line:
                    if "physical id" in cur or "core id" in cur:
                        phys.add((cur.get("physical id"), cur.get("core id")))
                    cur = {}
                    continue
                k, v = (x.strip() for x in line.split(":", 1))
                cur[k] = v
                if k == "model name" and model is None:
                    model = v
                if k == "flags" and not flags:
                    flags = v
        if cur and ("physical id" in cur or "core id" in cur):
            phys.add((cur.get("physical id"), cur.get("core id")))
        info["cpu_model"] = model or platform.processor() or "unknown"
        if phys:
            info["physical_cores"] = len(phys)
        fl = set(flags.split())
        info["simd"] = " ".join(x for x in ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512bw",
                                           "avx_vnni", "neon", "asimd") if x in fl)
    except OSError:
        info["cpu_model"] = platform.processor() or "unknown"
    return info


class CpuMeter:
    """Share of the machine's CPU time used by OTHER processes (plus hypervisor steal) while a
    run was going on: (system busy jiffies - our own CPU time) / (wall * logical CPUs).  A run
    with a large share was fighting someone else for cores; the summary repeats the medians over
    the runs below --max-foreign."""

    def __init__(self, child):
        self.child = child

    @staticmethod
    def _stat():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
        return busy / os.sysconf("SC_CLK_TCK")

    def _own(self):
        if self.child:
            import resource
            r = resource.getrusage(resource.RUSAGE_CHILDREN)
            return r.ru_utime + r.ru_stime
        t = os.times()
        return t.user + t.system

    def __enter__(self):
        try:
            self.b0 = self._stat()
        except (OSError, ValueError):
            self.b0 = None
        self.o0, self.w0 = self._own(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.w0
        own = self._own() - self.o0
        if self.b0 is None or wall <= 0:
            self.foreign = float("nan")
        else:
            self.foreign = max(0.0, (self._stat() - self.b0 - own) / (wall * (os.cpu_count() or 1)))
        return False


def wait_for_quiet(max_busy, timeout):
    """Wait (up to timeout seconds) for a 0.5 s window in which the machine's CPUs are busier than
    max_busy for less than that share; returns the seconds waited."""
    t0 = time.perf_counter()
    while True:
        b0 = CpuMeter._stat()
        time.sleep(0.5)
        busy = (CpuMeter._stat() - b0) / (0.5 * (os.cpu_count() or 1))
        waited = time.perf_counter() - t0
        if busy <= max_busy or waited >= timeout:
            return waited


def build_prompt_ids(llm, n):
    text = PARAGRAPH
    ids = llm.tokenize(text.encode(), add_bos=False)
    while len(ids) < n:
        text += PARAGRAPH
        ids = llm.tokenize(text.encode(), add_bos=False)
    return ids[:n]


# ---------------------------------------------------------------------------------------------
# HAT
# ---------------------------------------------------------------------------------------------
def hat_supports(hat, flag):
    try:
        r = subprocess.run([hat, "generate", "--help"], capture_output=True, text=True, timeout=30)
        return flag in (r.stdout + r.stderr)
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_hat(hat, model, ids, gen, threads, print_ids):
    cmd = [hat, "generate", "--model", model, "--prompt-ids", " ".join(map(str, ids)),
           "--max-tokens", str(gen), "--temp", "0", "--threads", str(threads), "--ignore-eos"]
    if print_ids:
        cmd.append("--print-ids")
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True)
    wall = time.perf_counter() - t0
    err = r.stderr.decode("utf-8", "replace")
    if r.returncode != 0:
        raise RuntimeError(f"hat exited {r.returncode}:\n{err[-2000:]}")
    lines = [ln for ln in err.splitlines() if ln.startswith("stats:")]
    if not lines:
        raise RuntimeError(f"no 'stats:' line in hat's stderr:\n{err[-2000:]}")
    st = {}
    for k, v in STATS_RE.findall(lines[-1][len("stats:"):]):
        try:
            st[k] = int(v) if re.fullmatch(r"-?\d+", v) else float(v)
        except ValueError:
            st[k] = v
    for need in ("prompt_tokens", "prompt_s", "gen_tokens", "decode_s"):
        if need not in st:
            raise RuntimeError(f"hat's stats line lacks {need}: {lines[-1]}")
    n_dec = st.get("decode_tokens", max(st["gen_tokens"] - 1, 0))
    out = r.stdout.decode("utf-8", "replace")
    gen_ids = None
    m = re.search(r"^ids:((?: -?\d+)*)\s*$", out, re.M)
    if m:
        gen_ids = [int(x) for x in m.group(1).split()]
    return {
        "pp_tokens": st["prompt_tokens"], "pp_s": st["prompt_s"],
        "pp_tok_s": st["prompt_tokens"] / st["prompt_s"],
        "tg_tokens": n_dec, "tg_s": st["decode_s"],
        "tg_tok_s": n_dec / st["decode_s"] if st["decode_s"] > 0 else float("nan"),
        "load_s": st.get("load_s"), "process_wall_s": wall, "stats": st, "gen_ids": gen_ids,
    }


# ---------------------------------------------------------------------------------------------
# llama.cpp
# ---------------------------------------------------------------------------------------------
class LlamaCpp:
    def __init__(self, model, threads, n_ctx):
        import llama_cpp
        from llama_cpp import Llama
        self.lc = llama_cpp
        self.llm = Llama(model_path=model, n_ctx=n_ctx, n_batch=512, n_ubatch=512,
                         n_threads=threads, n_threads_batch=threads, flash_attn=False,
                         type_k=1, type_v=1, n_gpu_layers=0, seed=1234, verbose=False)
        cp = self.llm.context_params
        assert cp.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        assert cp.n_threads == threads and cp.n_threads_batch == threads
        self.n_vocab = self.llm.n_vocab()
        self.has_perf = hasattr(llama_cpp, "llama_perf_context") and hasattr(llama_cpp, "llama_perf_context_reset")

    def version(self):
        v = {"llama_cpp_python": self.lc.__version__}
        try:
            v["llama_version"] = self.lc.llama_version().decode()
        except Exception:
            pass
        return v

    def _logits(self):
        p = self.lc.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(p, shape=(self.n_vocab,))

    def run(self, ids, gen):
        llm = self.llm
        llm.reset()
        # reset() only rewinds n_tokens; clear the KV memory explicitly for a fresh cache
        mem = self.lc.llama_get_memory(llm.ctx) if hasattr(self.lc, "llama_get_memory") else None
        if mem is not None:
            self.lc.llama_memory_clear(mem, True)
        if self.has_perf:
            self.lc.llama_perf_context_reset(llm.ctx)
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        out = [int(np.argmax(self._logits()))]
        while len(out) < gen:
            llm.eval([out[-1]])
            out.append(int(np.argmax(self._logits())))
        t2 = time.perf_counter()
        n_dec = max(gen - 1, 0)
        r = {"pp_wall_s": t1 - t0, "tg_wall_s": t2 - t1, "gen_ids": out}
        if self.has_perf:
            pd = self.lc.llama_perf_context(llm.ctx)
            r["perf"] = {"t_p_eval_ms": pd.t_p_eval_ms, "n_p_eval": pd.n_p_eval,
                         "t_eval_ms": pd.t_eval_ms, "n_eval": pd.n_eval}
        if self.has_perf and r["perf"]["n_p_eval"] == len(ids) and r["perf"]["n_eval"] == n_dec:
            r.update(pp_tokens=len(ids), pp_s=pd.t_p_eval_ms / 1e3, tg_tokens=n_dec,
                     tg_s=pd.t_eval_ms / 1e3, timing="llama_perf_context")
        else:  # perf counters missing or not counting what we expect: fall back to wall clock
            r.update(pp_tokens=len(ids), pp_s=t1 - t0, tg_tokens=n_dec, tg_s=t2 - t1,
                     timing="perf_counter")
        r["pp_tok_s"] = r["pp_tokens"] / r["pp_s"]
        r["tg_tok_s"] = r["tg_tokens"] / r["tg_s"] if r["tg_s"] > 0 else float("nan")
        return r


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hat", default="build/hat", help="our binary (default build/hat)")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", help="write raw numbers here")
    ap.add_argument("--max-foreign", type=float, default=0.10,
                    help="a run counts as clean when other processes used less than this share of"
                         " the machine's CPU during it (default 0.10)")
    ap.add_argument("--quiet-wait", type=float, default=20.0,
                    help="before each run wait up to this many seconds for the machine to be idle"
                         " (0 = don't wait; default 20)")
    ap.add_argument("--retries", type=int, default=2,
                    help="re-run a contended run up to this many times (default 2); the last"
                         " attempt is kept either way and flagged")
    ap.add_argument("--llamacpp-only", action="store_true", help="skip our engine (for testing)")
    args = ap.parse_args()
    if args.gen < 2:
        ap.error("--gen must be >= 2 (decode speed needs at least one single-token forward)")

    hat = args.hat
    if not os.path.isabs(hat) and not os.path.exists(hat):
        hat = os.path.join(ROOT, hat)
    hat = os.path.abspath(hat)
    model = os.path.abspath(args.model)
    if not args.llamacpp_only and not os.access(hat, os.X_OK):
        sys.exit(f"our binary {hat} is missing or not executable (build it, or pass --llamacpp-only)")

    mi = machine_info()
    print(f"machine: {mi.get('cpu_model')}, {mi.get('logical_cpus')} logical CPUs"
          f"{', ' + str(mi['physical_cores']) + ' physical cores' if 'physical_cores' in mi else ''}"
          f"{', affinity ' + str(mi['affinity_cpus']) if 'affinity_cpus' in mi else ''}; simd: {mi.get('simd', '')}")

    load0 = os.getloadavg()
    b0 = CpuMeter._stat()
    time.sleep(1.0)
    busy0 = (CpuMeter._stat() - b0) / (os.cpu_count() or 1)
    if busy0 > args.max_foreign:
        print(f"warning: other processes are using {100 * busy0:.0f}% of the CPUs right now; expect contended"
              " runs (both engines spin-wait with OpenMP and suffer badly when oversubscribed)")
    lc = LlamaCpp(model, args.threads, n_ctx=max(2048, args.prompt_tokens + args.gen + 16))
    ids = build_prompt_ids(lc.llm, args.prompt_tokens)
    print(f"model: {model}\nthreads: {args.threads}, prompt: {len(ids)} tokens, gen: {args.gen} tokens"
          f" ({args.gen - 1} single-token forwards timed), repeats: {args.repeats}")
    print(f"llama.cpp: {lc.version()}, flash_attn off, f16 KV, n_batch=n_ubatch=512")

    print_ids = (not args.llamacpp_only) and hat_supports(hat, "--print-ids")

    # warm-up (not counted): page cache, CPU frequency, first-touch allocations
    lc.run(ids, min(args.gen, 8))
    if not args.llamacpp_only:
        run_hat(hat, model, ids, min(args.gen, 8), args.threads, False)

    ours, theirs, discarded = [], [], []
    for rep in range(args.repeats):
        order = ["hat", "llama"] if rep % 2 == 0 else ["llama", "hat"]
        if args.llamacpp_only:
            order = ["llama"]
        for who in order:
            for attempt in range(args.retries + 1):
                # let the other engine's worker threads go idle, then wait for a quiet machine
                time.sleep(0.2)
                waited = wait_for_quiet(args.max_foreign, args.quiet_wait) if args.quiet_wait > 0 else 0.0
                with CpuMeter(child=(who == "hat")) as cm:
                    if who == "hat":
                        r = run_hat(hat, model, ids, args.gen, args.threads, print_ids)
                    else:
                        r = lc.run(ids, args.gen)
                r["foreign_cpu"] = cm.foreign
                r["waited_s"] = waited
                r["attempt"] = attempt
                if cm.foreign <= args.max_foreign or attempt == args.retries:
                    break
                discarded.append(dict(r, engine=who, rep=rep))
                print(f"  rep {rep} {who}: contended (foreign cpu {100 * cm.foreign:.0f}%), retrying")
            (ours if who == "hat" else theirs).append(r)
            print(f"  rep {rep} {'hat      ' if who == 'hat' else 'llama.cpp'}: pp {r['pp_tok_s']:8.1f} tok/s"
                  f"   tg {r['tg_tok_s']:7.2f} tok/s   ({r['pp_s'] * 1e3:7.1f} ms / {r['tg_s'] * 1e3:7.1f} ms)"
                  f"   foreign cpu {100 * cm.foreign:4.0f}%"
                  + (" CONTENDED" if cm.foreign > args.max_foreign else ""))
        sys.stdout.flush()

    summary = {"llama.cpp": {"pp_tok_s": med([r["pp_tok_s"] for r in theirs]),
                             "tg_tok_s": med([r["tg_tok_s"] for r in theirs]),
                             "pp_ms": med([r["pp_s"] * 1e3 for r in theirs]),
                             "tg_ms_per_tok": med([r["tg_s"] * 1e3 / r["tg_tokens"] for r in theirs])}}
    print()
    print(f"{'median over ' + str(args.repeats) + ' repeats':<26}{'pp tok/s':>12}{'tg tok/s':>12}{'tg ms/tok':>12}")
    if ours:
        summary["hat"] = {"pp_tok_s": med([r["pp_tok_s"] for r in ours]),
                          "tg_tok_s": med([r["tg_tok_s"] for r in ours]),
                          "pp_ms": med([r["pp_s"] * 1e3 for r in ours]),
                          "tg_ms_per_tok": med([r["tg_s"] * 1e3 / r["tg_tokens"] for r in ours])}
        h = summary["hat"]
        print(f"{'hat':<26}{h['pp_tok_s']:12.1f}{h['tg_tok_s']:12.2f}{h['tg_ms_per_tok']:12.3f}")
    L = summary["llama.cpp"]
    print(f"{'llama.cpp':<26}{L['pp_tok_s']:12.1f}{L['tg_tok_s']:12.2f}{L['tg_ms_per_tok']:12.3f}")
    if ours:
        # ratio of medians, and median of per-repeat ratios (pairs share a repeat's noise)
        pr = [o["pp_tok_s"] / t["pp_tok_s"] for o, t in zip(ours, theirs)]
        tr = [o["tg_tok_s"] / t["tg_tok_s"] for o, t in zip(ours, theirs)]
        summary["ratio_hat_over_llamacpp"] = {
            "pp": h["pp_tok_s"] / L["pp_tok_s"], "tg": h["tg_tok_s"] / L["tg_tok_s"],
            "pp_paired_median": med(pr), "tg_paired_median": med(tr),
            "pp_paired_min_max": [min(pr), max(pr)], "tg_paired_min_max": [min(tr), max(tr)]}
        R = summary["ratio_hat_over_llamacpp"]
        print(f"{'ratio hat/llama.cpp':<26}{R['pp']:12.3f}{R['tg']:12.3f}"
              f"   (paired per-repeat medians: pp {R['pp_paired_median']:.3f} [{min(pr):.3f}..{max(pr):.3f}],"
              f" tg {R['tg_paired_median']:.3f} [{min(tr):.3f}..{max(tr):.3f}])")
        # informational: do the greedy continuations agree?
        hid = next((o["gen_ids"] for o in ours if o["gen_ids"]), None)
        lid = theirs[0]["gen_ids"]
        if hid is not None:
            same = 0
            while same < min(len(hid), len(lid)) and hid[same] == lid[same]:
                same += 1
            summary["greedy_ids_common_prefix"] = same
            print(f"greedy ids: hat and llama.cpp agree on the first {same} of {len(lid)} generated tokens"
                  " (informational; near-ties may legitimately diverge)")
    clean_o = [r for r in ours if r["foreign_cpu"] <= args.max_foreign]
    clean_t = [r for r in theirs if r["foreign_cpu"] <= args.max_foreign]
    n_runs = len(ours) + len(theirs)
    if len(clean_o) + len(clean_t) < n_runs:
        print(f"clean runs only (foreign cpu <= {100 * args.max_foreign:.0f}%): hat {len(clean_o)}/{len(ours)},"
              f" llama.cpp {len(clean_t)}/{len(theirs)}")
        cs = summary["clean_runs_only"] = {"max_foreign": args.max_foreign,
                                           "n_hat": len(clean_o), "n_llama.cpp": len(clean_t)}
        for name, rs in (("hat", clean_o), ("llama.cpp", clean_t)):
            if rs or name == "llama.cpp":
                cs[name] = {"pp_tok_s": med([r["pp_tok_s"] for r in rs]),
                            "tg_tok_s": med([r["tg_tok_s"] for r in rs])}
                print(f"  {name:<24}{cs[name]['pp_tok_s']:12.1f}{cs[name]['tg_tok_s']:12.2f}")
        if clean_o and clean_t:
            cs["ratio_hat_over_llamacpp"] = {"pp": cs["hat"]["pp_tok_s"] / cs["llama.cpp"]["pp_tok_s"],
                                             "tg": cs["hat"]["tg_tok_s"] / cs["llama.cpp"]["tg_tok_s"]}
            print(f"  {'ratio hat/llama.cpp':<24}{cs['ratio_hat_over_llamacpp']['pp']:12.3f}"
                  f"{cs['ratio_hat_over_llamacpp']['tg']:12.3f}")
    print("(ratios > 1 mean HAT is faster)")
    load1 = os.getloadavg()
    print(f"load average before/after: {load0[0]:.2f} / {load1[0]:.2f} (1 min)")

    if args.json:
        rec = {"machine": mi, "model": model, "hat": hat if not args.llamacpp_only else None,
               "threads": args.threads, "max_foreign": args.max_foreign, "prompt_tokens": len(ids), "gen": args.gen,
               "repeats": args.repeats, "loadavg_before_after": [load0, load1], "prompt_ids": ids, "llama_cpp": lc.version(),
               "runs": {"hat": ours, "llama.cpp": theirs}, "discarded_contended_runs": discarded,
               "summary": summary,
               "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with open(args.json, "w") as f:
            json.dump(rec, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
