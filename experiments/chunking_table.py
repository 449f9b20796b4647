#!/usr/bin/env python3
"""Markdown tables from experiments/bench_chunking.py results (one or more --json files): the TTFT
grid (one row per device count x link x prompt length) and the stall table, with the ratios the
issue asks for, computed from the medians the files hold. Nothing is measured here.

usage: experiments/chunking_table.py results/grid_*.json
"""
import json
import sys


def grid_rows(res):
    out = []
    for r in res.get("grid", []):
        med = r["median"]
        fixed = sorted((k for k in med if k.startswith("fixed")), key=lambda k: int(k[5:]))
        best = r["best_fixed"]
        dyn, off = med["dynamic"], med["off"]
        out.append((r["devices"], r["link"], r["tokens"],
                    f"| {r['devices']} | {r['link']} | {r['tokens']} | {off['ttft_s']:.2f} | "
                    + " | ".join(f"{med[k]['ttft_s']:.2f}" for k in fixed)
                    + f" | {dyn['ttft_s']:.2f} ({dyn['chunks']:.0f} × {dyn['mean_chunk']:.0f}) | {best[5:]} | "
                    f"**{r['dyn_over_best']:.3f}** | {r['dyn_over_off']:.3f} | {dyn['ttft_pred_s']:.2f} "
                    f"({100 * r['pred_err']:+.1f} %) | "
                    f"{sum(x['cloud_distorted'] for v in r['runs'].values() for x in v)} / "
                    f"{sum(x['cloud_passes'] for v in r['runs'].values() for x in v)} |", fixed))
    return out


def main():
    rows, stall = [], []
    for path in sys.argv[1:]:
        res = json.load(open(path))
        rows += grid_rows(res)
        stall += res.get("stall", [])
    if rows:
        fixed = rows[0][4]
        print("| devices | link | prompt tokens | off s | " + " | ".join(f"fixed {k[5:]} s" for k in fixed)
              + " | dynamic s (chunks × mean) | best fixed | dynamic / best fixed | dynamic / off | predicted s (error)"
              " | cloud passes over profile |")
        print("|" + "---|" * (10 + len(fixed)))
        for r in sorted(rows, key=lambda x: (x[0], x[1], x[2])):
            print(r[3])
    if stall:
        print()
        print("| policy | others' p99 TBT during the prefill | one decode round (no long prompt) | longest pass | decode pass "
              "| plans the bound cut | long prompt's TTFT |")
        print("|---|---|---|---|---|---|---|")
        for s in stall:
            print(f"| {s['label']} | {1e3 * s['p99_tbt_s']:.0f} ms | {1e3 * s.get('decode_round_s', float('nan')):.0f} ms "
                  f"| {1e3 * s['max_pass_s']:.0f} ms | {1e3 * s['decode_pass_s']:.1f} ms | {s['stall_bound_plans']:.0f} | "
                  f"{s['ttft0_s']:.1f} s |")


if __name__ == "__main__":
    main()
