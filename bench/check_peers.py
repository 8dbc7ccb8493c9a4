"""Check that the peer drivers agree with the reference matcher.

    python bench/check_peers.py [--ops 5000] [--seeds 1,2,3]

Replays small flows (normal and deep) through the reference matcher in
``flows.py`` and through every peer in ``peers.py`` and prints whether traded
volume, number of trades (maker fills) and the final resting order count agree.
As a stricter check it also compares the full sequence of fills, each as
(qty, price), in the order each engine reports them: equal sequences mean the
peer filled the same makers in the same price-time order at the maker's price.
Exit status 0 if everything agrees, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flows import flow_stats, make_flow, reference_match  # noqa: E402
from peers import run_liquibook, run_pyorderbook  # noqa: E402

KEYS = ("volume", "trades", "resting")


def _first_difference(got: list, want: list) -> str:
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return f" (fill #{i}: {a} vs reference {b})"
    return f" ({len(got)} fills vs reference {len(want)})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=5_000)
    ap.add_argument("--seeds", default="1,2,3")
    args = ap.parse_args(argv)

    peers = [
        ("liquibook", lambda f, fills: run_liquibook(f, fills=fills)),
        ("liquibook(plain)", lambda f, fills: run_liquibook(f, book="plain", fills=fills)),
        ("pyorderbook", lambda f, fills: run_pyorderbook(f, fills=fills)),
    ]
    all_ok = True
    for seed in (int(s) for s in args.seeds.split(",") if s):
        for deep in (False, True):
            flow = make_flow(args.ops, seed, deep=deep)
            st = flow_stats(flow)
            ref_fills: list = []
            ref = reference_match(flow, fills=ref_fills)
            kind = "deep" if deep else "normal"
            print(
                f"{kind:6} seed={seed} ops={st['ops']} prefill={len(flow.prefill)} "
                f"(gtc={st['gtc_adds']} ioc={st['ioc_adds']} cancel={st['cancels']}, "
                f"{st['dead_cancels']} of them no-ops; {st['trading_add_share']:.1%} of adds trade; "
                f"resting after prefill {st['resting_after_prefill']} on "
                f"{st['levels_after_prefill']} levels)"
            )
            print(
                f"  {'reference':17} volume={ref['volume']:>8} trades={ref['trades']:>6} "
                f"resting={ref['resting']:>6}"
            )
            for name, run in peers:
                fills: list = []
                res = run(flow, fills)
                diffs = [k for k in KEYS if res[k] != ref[k]]
                if fills != ref_fills:
                    diffs.append("fill sequence" + _first_difference(fills, ref_fills))
                ok = not diffs
                all_ok &= ok
                verdict = "AGREE" if ok else "DIFFER in " + ", ".join(diffs)
                print(
                    f"  {name:17} volume={res['volume']:>8} trades={res['trades']:>6} "
                    f"resting={res['resting']!s:>6}  fills-seq={'same' if fills == ref_fills else 'DIFF'}  {verdict}"
                )
    print("ALL AGREE" if all_ok else "MISMATCH")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
