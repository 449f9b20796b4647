#!/usr/bin/env python3
"""check_trace.py — validate a HAT run trace (HDF5, schema in src/trace/trace.h).

usage: check_trace.py TRACE [--schema-only] [--expect-devices N] [--summary-tol 1e-9] [--allow-failed]

Checks the root attributes and the datasets' fields (always), then, unless --schema-only,
the run's invariants: status, token indices and latencies, step sequence numbers, phase
timestamps and durations, positions, byte totals, batches, and /summary and /batch_hist
recomputed from the records exactly as src/trace/report.c defines them. --allow-failed accepts a
trace whose status is "failed: ..." when it names when (failed_at_s) and holds nothing later; its
/summary and /batch_hist are then checked where present (a run that failed with every device
finished or lost writes them), and lost devices (lost = 1 in /devices, only in a failed run) are
checked as such. Prints every problem
(at most MAX_SHOWN lines per kind, with a count) and exits 1, or prints "trace OK".

From other scripts: `from check_trace import load_trace; t = load_trace(path)` gives a dict of
numpy structured arrays ("tokens", "steps", ...) plus "attrs" (str and int values).
Needs only h5py and numpy.
"""
import argparse
import math
import re
import sys

import h5py
import numpy as np

# Keep in sync with src/trace/trace.h and src/trace/report.h (C member names; `pad` is not stored).
STR_ATTRS = ["hat_version", "git_hash", "compiler", "build_type", "c_flags", "features", "config",
             "config_path", "partition", "model_path", "model_name", "model_identity", "status",
             "created_utc", "mode", "privacy", "adapter"]
INT_ATTRS = ["n_ranks", "n_devices", "n_cloud", "split_a", "split_b", "n_layer"]
OPTIONAL_INT_ATTRS = ["cloud_tp",   # absent from traces written before tensor parallelism (means 1)
                      "timing_split_a", "timing_split_b", "timing_layers", "timing_hidden"]   # before timing shapes
# absent from older traces: group_s before tensor parallelism, the chunking and cost-model fields
# before dynamic chunking (each group is absent as a whole)
COST_FIELDS = ["ctx", "pred_s", "cost_c0", "cost_c1", "cost_c2", "cost_c3", "fit_rms_rel", "fit_samples",
               "fit_clamped"]
CHUNK_FIELDS = ["chunking", "chunks", "stall_bound", "ttft_pred_s"]
LOST_FIELDS = ["lost"]   # absent before lost devices were marked (/devices and /summary)
# absent before [cloud] compute (server profiles): the pass's real compute, its profile's prediction
PROFILE_FIELDS = ["real_s", "profile_s", "distorted"]
OPTIONAL_FIELDS = {"batches": ["group_s"] + COST_FIELDS + PROFILE_FIELDS, "steps": ["plan_done_t"],
                   "devices": CHUNK_FIELDS + LOST_FIELDS, "summary": LOST_FIELDS}
FIELDS = {
    "tokens": ["device", "index", "step", "token", "t_emit", "latency_s"],
    "steps": ["device", "seq", "kind", "pos0", "n_tok", "cloud_rank", "batch_tokens", "batch_devices",
              "up_bytes", "down_bytes", "t_start", "dev_in_s", "dev_in_pred_s", "t_up_send", "up_model_s",
              "t_cloud_ready", "cloud_queue_s", "cloud_compute_s", "t_down_send", "down_model_s",
              "t_down_ready", "dev_out_s", "dev_out_pred_s", "t_end", "gamma", "accepted", "emitted",
              "t_up_first", "draft_s", "draft_pred_s", "plan_done_t"],
    "batches": ["cloud_rank", "batch", "n_tok", "n_dev", "t_start", "t_end", "group_s"] + COST_FIELDS
               + PROFILE_FIELDS,
    "devices": ["device", "rank", "cloud_rank", "prompt_tokens", "gen_tokens", "n_steps", "profile_exceeded",
                "rounds", "drafted", "accepted", "t_request", "t_first", "t_done", "up_bytes", "down_bytes",
                "chunking", "chunks", "stall_bound", "lost", "ttft_pred_s"],
    "summary": ["device", "n_tokens", "n_tbt", "ttft_mean", "ttft_p50", "ttft_p90", "ttft_p99", "tbt_mean",
                "tbt_p50", "tbt_p90", "tbt_p99", "tok_s", "up_bytes_per_tok", "down_bytes_per_tok", "rounds",
                "lost", "accept_rate", "tokens_per_round"],
    "batch_hist": ["batch_tokens", "count"],
}
STEP_PREFILL, STEP_DECODE, STEP_ROUND = 0, 1, 2
TIMELINE = ["t_start", "t_up_send", "t_cloud_ready", "t_down_send", "t_down_ready", "t_end"]
DURATIONS = ["draft_s", "draft_pred_s", "dev_in_s", "dev_in_pred_s", "up_model_s", "cloud_queue_s", "cloud_compute_s", "down_model_s",
             "dev_out_s", "dev_out_pred_s"]
TIME_SLACK = 1e-6     # clock-offset correction may reorder cross-rank timestamps by this much
LATENCY_TOL = 1e-9    # latency_s against the t_emit differences
MAX_SHOWN = 10


def load_trace(path):
    """Returns {"attrs": {name: str|int|...}, "tokens": ndarray, ...} for the datasets present."""
    out = {"attrs": {}}
    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            if isinstance(v, bytes):
                v = v.decode("utf-8", "replace")
            elif isinstance(v, np.integer):
                v = int(v)
            out["attrs"][k] = v
        for name in FIELDS:
            if name in f and isinstance(f[name], h5py.Dataset):
                out[name] = f[name][...]
    return out


class Problems:
    def __init__(self):
        self.kinds = {}  # kind -> list of messages, in first-seen order

    def add(self, kind, msg):
        self.kinds.setdefault(kind, []).append(msg)

    def __len__(self):
        return sum(len(v) for v in self.kinds.values())

    def print(self, out):
        for kind, msgs in self.kinds.items():
            for m in msgs[:MAX_SHOWN]:
                print(f"  {kind}: {m}", file=out)
            if len(msgs) > MAX_SHOWN:
                print(f"  {kind}: ... and {len(msgs) - MAX_SHOWN} more", file=out)


# ---- report.c's statistics -------------------------------------------------------------------

def pct(sorted_samples, p):
    """Nearest rank: the sample of 1-based rank ceil(p * n / 100) (integer arithmetic, as report.c)."""
    n = len(sorted_samples)
    if n == 0:
        return math.nan
    rank = min(max((p * n + 99) // 100, 1), n)
    return float(sorted_samples[rank - 1])


def stats(samples):
    s = np.sort(np.asarray(samples, dtype=np.float64))
    mean = float(s.mean()) if len(s) else math.nan
    return mean, pct(s, 50), pct(s, 90), pct(s, 99)


def ratio(num, den):
    return num / den if den > 0 else math.nan


def is_lost(dv):
    return "lost" in (dv.dtype.names or []) and int(dv["lost"]) != 0


def compute_summary(tokens, devices, n_devices):
    """Rows as report_build makes them: devices 0..n_devices-1, then overall (device -1)."""
    rows = []
    ttft_all, tbt_all = [], []
    gen_sum = up_sum = down_sum = 0.0
    rounds_sum = drafted_sum = accepted_sum = round_tok_sum = 0.0
    t_req_min, t_done_max = math.inf, -math.inf
    n_live = n_lost = 0
    for d in range(n_devices):
        t = tokens[tokens["device"] == d]
        ttft = t["latency_s"][t["index"] == 0]
        tbt = t["latency_s"][t["index"] >= 1]
        ttft_all.extend(ttft.tolist())
        tbt_all.extend(tbt.tolist())
        tv = float(ttft[0]) if len(ttft) else math.nan
        row = {"device": d, "n_tokens": len(t), "n_tbt": len(tbt), "ttft_mean": tv, "ttft_p50": tv,
               "ttft_p90": tv, "ttft_p99": tv, "tok_s": math.nan, "up_bytes_per_tok": math.nan,
               "down_bytes_per_tok": math.nan, "rounds": 0, "lost": 0, "accept_rate": math.nan,
               "tokens_per_round": math.nan}
        row.update(zip(["tbt_mean", "tbt_p50", "tbt_p90", "tbt_p99"], stats(tbt)))
        dv = devices[devices["device"] == d]
        if len(dv) and is_lost(dv[0]):   # its tokens are samples, its row holds no figures
            row["lost"] = 1
            n_lost += 1
        elif len(dv):
            dv = dv[0]
            n_live += 1
            gen = float(dv["gen_tokens"])
            row["tok_s"] = ratio(gen, float(dv["t_done"]) - float(dv["t_request"]))
            row["up_bytes_per_tok"] = ratio(float(dv["up_bytes"]), gen)
            row["down_bytes_per_tok"] = ratio(float(dv["down_bytes"]), gen)
            row["rounds"] = int(dv["rounds"])
            row["accept_rate"] = ratio(float(dv["accepted"]), float(dv["drafted"]))
            row["tokens_per_round"] = ratio(gen - 1, float(dv["rounds"])) if gen else math.nan
            rounds_sum += float(dv["rounds"])
            drafted_sum += float(dv["drafted"])
            accepted_sum += float(dv["accepted"])
            round_tok_sum += gen - 1 if gen else 0.0
            gen_sum += gen
            up_sum += float(dv["up_bytes"])
            down_sum += float(dv["down_bytes"])
            t_req_min = min(t_req_min, float(dv["t_request"]))
            t_done_max = max(t_done_max, float(dv["t_done"]))
        rows.append(row)
    overall = {"device": -1, "n_tokens": len(tokens), "n_tbt": len(tbt_all)}
    overall.update(zip(["ttft_mean", "ttft_p50", "ttft_p90", "ttft_p99"], stats(ttft_all)))
    overall.update(zip(["tbt_mean", "tbt_p50", "tbt_p90", "tbt_p99"], stats(tbt_all)))
    overall["tok_s"] = ratio(gen_sum, t_done_max - t_req_min) if n_live else math.nan
    overall["lost"] = n_lost
    overall["up_bytes_per_tok"] = ratio(up_sum, gen_sum)
    overall["down_bytes_per_tok"] = ratio(down_sum, gen_sum)
    overall["rounds"] = int(rounds_sum)
    overall["accept_rate"] = ratio(accepted_sum, drafted_sum)
    overall["tokens_per_round"] = ratio(round_tok_sum, rounds_sum)
    rows.append(overall)
    return rows


def close(a, b, tol):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol * max(abs(a), abs(b)) or a == b


# ---- checks ----------------------------------------------------------------------------------

def check_schema(t, p, failed_ok=False):
    attrs = t["attrs"]
    for a in STR_ATTRS:
        if a not in attrs:
            p.add("attribute", f"missing root attribute {a}")
        elif not isinstance(attrs[a], str):
            p.add("attribute", f"{a} is {type(attrs[a]).__name__}, not a string")
    for a in INT_ATTRS:
        if a not in attrs:
            p.add("attribute", f"missing root attribute {a}")
        elif not isinstance(attrs[a], int):
            p.add("attribute", f"{a} is {type(attrs[a]).__name__}, not an integer")
    for a in OPTIONAL_INT_ATTRS:
        if a in attrs and not isinstance(attrs[a], int):
            p.add("attribute", f"{a} is {type(attrs[a]).__name__}, not an integer")
    if isinstance(attrs.get("cloud_tp"), int) and isinstance(attrs.get("n_cloud"), int):
        if attrs["cloud_tp"] < 1 or attrs["n_cloud"] % attrs["cloud_tp"]:
            p.add("attribute", f"cloud_tp {attrs['cloud_tp']} does not divide n_cloud {attrs['n_cloud']}")
    ok = True
    for name, fields in FIELDS.items():
        if name not in t and failed_ok and name in ("summary", "batch_hist"):
            continue   # written at the end of a run: a failed one may lack them
        if name not in t:
            p.add("dataset", f"missing dataset /{name}")
            ok = False
            continue
        have = list(t[name].dtype.names or [])
        opt = OPTIONAL_FIELDS.get(name, [])
        if have != fields and have == [x for x in fields if x in have] and all(x in opt for x in fields if x not in have):
            pass   # an older trace without some optional fields
        elif have != fields:
            missing = [x for x in fields if x not in have]
            extra = [x for x in have if x not in fields]
            p.add("dataset", f"/{name} fields differ: missing {missing}, unexpected {extra}"
                  + ("" if missing or extra else " (order differs)"))
            ok = False
        if t[name].ndim != 1:
            p.add("dataset", f"/{name} is {t[name].ndim}-D, not 1-D")
            ok = False
    return ok


def check_tokens(tok, dev_by, p, lost=()):
    for d in np.unique(tok["device"]):
        if int(d) not in dev_by and int(d) not in lost:
            p.add("tokens", f"device {d} has {np.sum(tok['device'] == d)} tokens but no /devices row")
    for d, dv in dev_by.items():
        t = tok[tok["device"] == d]
        t = t[np.argsort(t["index"], kind="stable")]
        gen = int(dv["gen_tokens"])
        idx = t["index"].astype(np.int64)
        dups = np.unique(idx[1:][idx[1:] == idx[:-1]])
        if len(dups):
            p.add("tokens", f"device {d}: duplicate token indices {dups[:10].tolist()}")
        if len(idx) != gen or not np.array_equal(np.unique(idx), np.arange(gen)):
            p.add("tokens", f"device {d}: token indices are not exactly 0..{gen - 1} "
                  f"({len(idx)} records, min {idx.min() if len(idx) else '-'}, max {idx.max() if len(idx) else '-'})")
        if len(dups) or len(t) == 0:
            continue
        prev = np.concatenate(([float(dv["t_request"])], t["t_emit"][:-1]))
        if t["index"][0] != 0:
            prev[0] = math.nan  # no token 0: the first latency has no reference
        want = t["t_emit"] - prev
        err = np.abs(t["latency_s"] - want)
        for i in np.nonzero(err > LATENCY_TOL)[0]:
            what = "t_emit - t_request" if t["index"][i] == 0 else "t_emit - previous t_emit"
            p.add("latency", f"device {d} token {t['index'][i]}: latency_s {t['latency_s'][i]:.9g} "
                  f"!= {what} = {want[i]:.9g}")
        back = np.nonzero(np.diff(t["t_emit"]) < 0)[0]
        for i in back:
            p.add("tokens", f"device {d}: t_emit decreases from token {t['index'][i]} to {t['index'][i + 1]}")
        bad_step = t["step"] >= int(dv["n_steps"])
        if bad_step.any():
            p.add("tokens", f"device {d}: {bad_step.sum()} tokens name a step >= n_steps {int(dv['n_steps'])}")


def check_steps(st, dev_by, p, lost=()):
    for d in np.unique(st["device"]):
        if int(d) not in dev_by and int(d) not in lost:
            p.add("steps", f"device {d} has steps but no /devices row")
    worst = (0.0, None)
    for d, dv in dev_by.items():
        s = st[st["device"] == d]
        s = s[np.argsort(s["seq"], kind="stable")]
        n = int(dv["n_steps"])
        if len(s) != n or not np.array_equal(s["seq"].astype(np.int64), np.arange(n)):
            p.add("steps", f"device {d}: step seq is not exactly 0..{n - 1} ({len(s)} records)")
        if len(s) == 0:
            continue
        for a, b in zip(TIMELINE, TIMELINE[1:]):
            over = s[a] - s[b]
            for i in np.nonzero(over > TIME_SLACK)[0]:
                p.add("timeline", f"device {d} step {s['seq'][i]}: {a} {s[a][i]:.9f} > {b} {s[b][i]:.9f} "
                      f"by {over[i]:.3g} s")
            k = int(np.argmax(over))
            if over[k] > worst[0]:
                worst = (float(over[k]), f"device {d} step {s['seq'][k]} {a} > {b}")
        for name in DURATIONS:
            for i in np.nonzero(s[name] < 0)[0]:
                p.add("duration", f"device {d} step {s['seq'][i]}: {name} = {s[name][i]:.9g} < 0")
        # a decode round commits its accepted drafts and the token it started from
        kinds = s["kind"]
        adv = np.where(kinds == STEP_PREFILL, s["n_tok"].astype(np.int64), s["accepted"].astype(np.int64) + 1)
        end = s["pos0"][:-1].astype(np.int64) + adv[:-1]
        for i in np.nonzero(s["pos0"][1:] != end)[0]:
            p.add("positions", f"device {d} step {s['seq'][i + 1]}: pos0 {s['pos0'][i + 1]}, previous step "
                  f"ended at {end[i]}")
        if not np.isin(kinds, [STEP_PREFILL, STEP_DECODE, STEP_ROUND]).all():
            p.add("steps", f"device {d}: step kinds other than prefill (0) / decode (1) / round (2)")
        rnd = kinds != STEP_PREFILL
        for i in np.nonzero(rnd & ((s["n_tok"] != s["gamma"] + 1) | (s["accepted"] > s["gamma"])
                                   | (s["emitted"] != s["accepted"] + 1)))[0]:
            p.add("rounds", f"device {d} step {s['seq'][i]}: n_tok {s['n_tok'][i]}, gamma {s['gamma'][i]}, "
                  f"accepted {s['accepted'][i]}, emitted {s['emitted'][i]}")
        for i in np.nonzero(rnd & (s["t_up_first"] > s["t_up_send"] + TIME_SLACK))[0]:
            p.add("timeline", f"device {d} step {s['seq'][i]}: t_up_first after t_up_send")
        for col, want in (("rounds", int(rnd.sum())), ("drafted", int(s["gamma"][rnd].astype(np.int64).sum())),
                          ("accepted", int(s["accepted"][rnd].astype(np.int64).sum()))):
            if int(dv[col]) != want:
                p.add("rounds", f"device {d}: /devices {col} = {int(dv[col])}, steps say {want}")
        dec = np.nonzero(rnd)[0]
        if len(dec) and (kinds[dec[0]:] == STEP_PREFILL).any():
            p.add("steps", f"device {d}: a prefill step follows decode step {s['seq'][dec[0]]}")
        if "chunks" in (dv.dtype.names or []):
            check_chunks(d, dv, s, p)
        for col in ("up_bytes", "down_bytes"):
            tot = int(s[col].astype(np.uint64).sum())
            if tot != int(dv[col]):
                p.add("bytes", f"device {d}: steps sum {col} = {tot}, /devices says {int(dv[col])}")
    return worst


def check_chunks(d, dv, s, p):
    """a device's prefill chunks against its /devices row: policy, count, plan stamps"""
    pre = s[s["kind"] == STEP_PREFILL]
    pol, n = int(dv["chunking"]), len(pre)
    if pol not in (0, 1, 2):
        p.add("chunking", f"device {d}: chunking {pol} is none of off (0), fixed (1), dynamic (2)")
    if int(dv["chunks"]) != n:
        p.add("chunking", f"device {d}: /devices chunks = {int(dv['chunks'])}, {n} prefill steps")
    if int(pre["n_tok"].astype(np.int64).sum()) != int(dv["prompt_tokens"]):
        p.add("chunking", f"device {d}: prefill chunks hold {int(pre['n_tok'].sum())} tokens, "
              f"prompt_tokens = {int(dv['prompt_tokens'])}")
    if pol == 0 and n != 1:
        p.add("chunking", f"device {d}: chunking off but {n} prefill chunks")
    if int(dv["stall_bound"]) > n:
        p.add("chunking", f"device {d}: stall_bound {int(dv['stall_bound'])} > chunks {n}")
    planned = s["plan_done_t"] != 0
    if pol != 2 and (planned.any() or dv["ttft_pred_s"] != 0):
        p.add("chunking", f"device {d}: plan stamps without dynamic chunking")
    if pol == 2 and n and not (planned[s["kind"] == STEP_PREFILL].all() and dv["ttft_pred_s"] > 0):
        p.add("chunking", f"device {d}: dynamic chunking without a plan stamp on every chunk")
    if (planned & (s["kind"] != STEP_PREFILL)).any():
        p.add("chunking", f"device {d}: a plan stamp on a decode step")


def check_batches(bat, p):
    for i in np.nonzero(bat["t_start"] > bat["t_end"])[0]:
        p.add("batches", f"cloud {bat['cloud_rank'][i]} batch {bat['batch'][i]}: t_start > t_end")
    if "group_s" in (bat.dtype.names or []):
        bad = (bat["group_s"] < 0) | (bat["group_s"] > bat["t_end"] - bat["t_start"] + TIME_SLACK)
        for i in np.nonzero(bad)[0]:
            p.add("batches", f"cloud {bat['cloud_rank'][i]} batch {bat['batch'][i]}: group_s {bat['group_s'][i]:.6g} "
                  f"outside [0, t_end - t_start]")
    if "ctx" in (bat.dtype.names or []):
        # every token attends at least to itself; the model's numbers are non-negative and finite
        for i in np.nonzero(bat["ctx"] < bat["n_tok"])[0]:
            p.add("cost", f"cloud {bat['cloud_rank'][i]} batch {bat['batch'][i]}: ctx {bat['ctx'][i]:.0f} < n_tok")
        for col in ("pred_s", "cost_c0", "cost_c1", "cost_c2", "cost_c3", "fit_rms_rel"):
            for i in np.nonzero(~(np.isfinite(bat[col]) & (bat[col] >= 0)))[0]:
                p.add("cost", f"cloud {bat['cloud_rank'][i]} batch {bat['batch'][i]}: {col} = {bat[col][i]:.6g}")
        for i in np.nonzero((bat["fit_samples"] == 0) & (bat["pred_s"] != 0))[0]:
            p.add("cost", f"cloud {bat['cloud_rank'][i]} batch {bat['batch'][i]}: a prediction without a model")
    if "profile_s" in (bat.dtype.names or []):
        # the pass lasted its real compute, padded up to the profile's prediction; distorted = real > prediction
        dur = bat["t_end"] - bat["t_start"]
        for col in ("real_s", "profile_s"):
            for i in np.nonzero(~(np.isfinite(bat[col]) & (bat[col] >= 0)))[0]:
                p.add("timing", f"cloud {bat['cloud_rank'][i]} batch {bat['batch'][i]}: {col} = {bat[col][i]:.6g}")
        for i in np.nonzero(dur + TIME_SLACK < np.maximum(bat["real_s"], bat["profile_s"]))[0]:
            p.add("timing", f"cloud {bat['cloud_rank'][i]} batch {bat['batch'][i]}: lasted {dur[i]:.6g} s, less than "
                  f"its real compute {bat['real_s'][i]:.6g} s or its profile's {bat['profile_s'][i]:.6g} s")
        want = (bat["profile_s"] > 0) & (bat["real_s"] > bat["profile_s"])
        for i in np.nonzero(bat["distorted"].astype(bool) != want)[0]:
            p.add("timing", f"cloud {bat['cloud_rank'][i]} batch {bat['batch'][i]}: distorted {bat['distorted'][i]} "
                  f"with real {bat['real_s'][i]:.6g} s, profile {bat['profile_s'][i]:.6g} s")
    for i in np.nonzero((bat["n_dev"] < 1) | (bat["n_tok"] < bat["n_dev"]))[0]:
        p.add("batches", f"cloud {bat['cloud_rank'][i]} batch {bat['batch'][i]}: n_tok {bat['n_tok'][i]}, "
              f"n_dev {bat['n_dev'][i]} (need n_tok >= n_dev >= 1)")


def check_summary(t, n_devices, tol, p):
    summ = t["summary"]
    want = compute_summary(t["tokens"], t["devices"], n_devices)
    if len(summ) != len(want):
        p.add("summary", f"/summary has {len(summ)} rows, expected {len(want)} (n_devices + 1)")
        return want
    for got, exp in zip(summ, want):
        tag = "overall" if exp["device"] < 0 else f"device {exp['device']}"
        for name in FIELDS["summary"]:
            g, e = got[name], exp[name]
            if name not in (got.dtype.names or []) and name in LOST_FIELDS:
                continue   # an older trace
            if name in ("device", "n_tokens", "n_tbt", "rounds", "lost"):
                if int(g) != int(e):
                    p.add("summary", f"{tag}: {name} {int(g)}, recomputed {int(e)}")
            elif not close(float(g), float(e), tol):
                p.add("summary", f"{tag}: {name} {float(g):.12g}, recomputed {float(e):.12g}")
    hist = t["batch_hist"]
    sizes, counts = np.unique(t["batches"]["n_tok"], return_counts=True)
    if len(hist) != len(sizes) or not (np.array_equal(hist["batch_tokens"], sizes)
                                       and np.array_equal(hist["count"], counts)):
        p.add("summary", f"/batch_hist {list(zip(hist['batch_tokens'].tolist(), hist['count'].tolist()))} != "
              f"recomputed {list(zip(sizes.tolist(), counts.tolist()))}")
    return want


def check_status(t, allow_failed, p):
    """1 for an accepted failed trace: its failed_at_s is there and no record is later"""
    attrs, st = t["attrs"], str(t["attrs"].get("status"))
    if st == "complete":
        return 0
    if not (allow_failed and st.startswith("failed:")):
        p.add("status", f"status is {st!r}, not 'complete'")
        return 0
    at = attrs.get("failed_at_s")
    if not isinstance(at, (float, np.floating)) or not math.isfinite(float(at)):
        p.add("status", f"a failed trace without a finite failed_at_s ({at!r})")
        return 1
    for name, cols in (("tokens", ["t_emit"]), ("steps", ["t_end"]), ("batches", ["t_end"]),
                       ("devices", ["t_done"])):
        for col in cols:
            late = t[name][col] > float(at) + TIME_SLACK
            if late.any():
                p.add("status", f"{int(late.sum())} /{name} records with {col} after failed_at_s {float(at):.6f}")
    return 1


def named_lost(status):
    """the device indices a status "... device 3 lost ..." / "... devices 1, 4 lost ..." names"""
    m = re.search(r"devices? ([0-9][0-9, ]*) lost", status)
    return {int(x) for x in m.group(1).replace(",", " ").split()} if m else set()


def check_lost(lost, failed, attrs, p):
    """lost devices: only in a failed run that names them; their rows hold no figures"""
    for d, r in lost.items():
        if not failed:
            p.add("devices", f"device {d} is marked lost in a trace whose status is not 'failed'")
        elif d not in named_lost(str(attrs.get("status"))):
            p.add("devices", f"device {d} is marked lost but the status does not name it: {attrs.get('status')!r}")
        for col in ("gen_tokens", "n_steps", "rounds", "drafted", "up_bytes", "down_bytes"):
            if int(r[col]) != 0:
                p.add("devices", f"lost device {d}: {col} = {int(r[col])} (a lost device's row holds no figures)")
    if lost:
        print(f"lost devices: {sorted(lost)}")


def ms(x):
    return "-" if math.isnan(x) else f"{1e3 * x:.2f} ms"


def main(argv=None):
    ap = argparse.ArgumentParser(description="Validate a HAT run trace.")
    ap.add_argument("trace")
    ap.add_argument("--schema-only", action="store_true", help="check attributes and dataset fields only")
    ap.add_argument("--expect-devices", type=int, default=None, metavar="N")
    ap.add_argument("--summary-tol", type=float, default=1e-9, help="relative tolerance for /summary")
    ap.add_argument("--allow-failed", action="store_true",
                    help="a failed run's trace: check what it holds (see the top of this file)")
    args = ap.parse_args(argv)

    try:
        t = load_trace(args.trace)
    except OSError as e:
        print(f"{args.trace}: cannot open: {e}")
        return 1
    p = Problems()
    schema_ok = check_schema(t, p, args.allow_failed)
    attrs = t["attrs"]
    n_devices = attrs.get("n_devices")
    if args.expect_devices is not None and n_devices != args.expect_devices:
        p.add("devices", f"n_devices attribute is {n_devices}, expected {args.expect_devices}")

    counts = ", ".join(f"{len(t[k])} {k}" for k in ("tokens", "steps", "batches", "devices") if k in t)
    print(f"{args.trace}: status {attrs.get('status', '?')!r}, n_devices {n_devices}, {counts}")
    if not args.schema_only and schema_ok and isinstance(n_devices, int):
        failed = check_status(t, args.allow_failed, p)
        dev = t["devices"]
        dev_by, lost = {}, {}
        for r in dev:
            d = int(r["device"])
            if d in dev_by or d in lost:
                p.add("devices", f"two /devices rows for device {d}")
            elif not 0 <= d < n_devices:
                p.add("devices", f"/devices row for device {d}, outside 0..{n_devices - 1}")
            elif is_lost(r):
                lost[d] = r
            else:
                dev_by[d] = r
        check_lost(lost, failed, attrs, p)
        missing = sorted(set(range(n_devices)) - set(dev_by) - set(lost))
        unfinished = set()
        if missing and failed:   # a failed run need not have every device's row
            print(f"devices without a /devices row (the run failed): {missing[:20]}")
            unfinished = set(missing)
        elif missing:
            p.add("devices", f"no /devices row for devices {missing[:20]}")
        if args.expect_devices is not None and len(dev) != args.expect_devices and not failed:
            p.add("devices", f"{len(dev)} /devices rows, expected {args.expect_devices}")
        check_tokens(t["tokens"], dev_by, p, set(lost) | unfinished)
        worst, where = check_steps(t["steps"], dev_by, p, set(lost) | unfinished)
        check_batches(t["batches"], p)
        # a failed run writes /summary only when every device finished or was lost
        if "summary" in t and not (failed and len(t["summary"]) == 0):
            rows = check_summary(t, n_devices, args.summary_tol, p)
        else:
            rows = compute_summary(t["tokens"], t["devices"], n_devices)
        if where:
            print(f"worst timeline inversion: {worst:.3g} s ({where})")
        if len(dev):
            span = float(dev["t_done"].max() - dev["t_request"].min())
            print(f"run span {span:.3f} s")
        a = rows[-1]
        print(f"overall: TTFT mean {ms(a['ttft_mean'])} p99 {ms(a['ttft_p99'])}; TBT mean {ms(a['tbt_mean'])} "
              f"p50 {ms(a['tbt_p50'])} p99 {ms(a['tbt_p99'])}; {a['tok_s']:.2f} tok/s; "
              f"{a['up_bytes_per_tok']:.1f} B/tok up, {a['down_bytes_per_tok']:.1f} B/tok down")
        if len(t["batches"]):
            print(f"cloud batches: mean {float(np.mean(t['batches']['n_tok'])):.2f} tokens")

    if len(p):
        print(f"trace FAILED: {len(p)} problem(s)")
        p.print(sys.stdout)
        return 1
    print("trace OK" + (" (schema only)" if args.schema_only else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
