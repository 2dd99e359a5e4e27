#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Loopback migration benchmark: runs tern-loopback over a small matrix.

Scenarios (RAM size from --ram, default 1 GiB):
  random-ch1   random data, 1 channel
  random-ch2   random data, 2 channels
  random-ch4   random data, 4 channels
  zero50-ch2     50% zero pages, each page zero or not on its own, 2 channels
  zero50run-ch2  50% zero pages in runs of 2 MiB (as a guest's free memory
                 lies in large areas), 2 channels

Runs are interleaved (A B C D A B C D ...) so that drift in the machine's
state (page cache, THP pool, CPU frequency) spreads over every scenario
instead of biasing one. Each run is a fresh pair of processes; the
destination's memory is fresh anonymous memory, never pre-touched.

Prints a table of medians with min and max, from the source side's JSON line,
and the ratio zero50 / random at the same channel count. Standard library only.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

SCENARIOS = [
    # name, channels, zero-pct, zero-run (pages decided together)
    ("random-ch1", 1, 0, 1),
    ("random-ch2", 2, 0, 1),
    ("random-ch4", 4, 0, 1),
    ("zero50-ch2", 2, 50, 1),
    ("zero50run-ch2", 2, 50, 512),
]

METRICS = [
    # key, header, format
    ("throughput_gbps", "throughput GB/s", "{:.2f}"),
    ("total_ms", "total ms", "{:.0f}"),
    ("downtime_ms", "downtime ms", "{:.0f}"),
    ("wire_mb", "wire MB", "{:.1f}"),
]


def default_binary():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "build", "examples", "tern-loopback")


def read_first_line(path):
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return "?"


def run_one(args, name, channels, zero_pct, zero_run):
    cmd = [
        args.binary,
        "--ram", args.ram,
        "--channels", str(channels),
        "--zero-pct", str(zero_pct),
        "--zero-run", str(zero_run),
        "--transport", args.transport,
        "--fill", "random",
        "--timeout", str(args.timeout),
        "-q",
    ] + args.extra
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=args.timeout + 60)
    except subprocess.TimeoutExpired:
        return None, "timed out after %d s" % (args.timeout + 60)
    wall = time.monotonic() - t0
    sides = {}
    for line in p.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        sides[obj.get("side")] = obj
    src = sides.get("source")
    dst = sides.get("destination")
    if p.returncode != 0 or not src or not dst:
        why = []
        for side in (src, dst):
            if side and side.get("error"):
                why.append("%s: %s" % (side["side"], side["error"]))
        if not why:
            why.append("exit %d: %s" % (p.returncode, p.stderr.strip()[-300:]))
        return None, "; ".join(why)
    sample = {
        "scenario": name,
        "channels": channels,
        "zero_pct": zero_pct,
        "zero_run": zero_run,
        "throughput_gbps": src["throughput_bps"] / 1e9,
        "total_ms": float(src["total_ms"]),
        "downtime_ms": float(src["downtime_ms"]),
        "wire_mb": src["transferred_bytes"] / 1e6,
        "wire_bytes": src["transferred_bytes"],
        "wall_s": wall,
        "source": src,
        "destination": dst,
    }
    return sample, None


def fmt_stat(values, fmt):
    if not values:
        return "-"
    med = statistics.median(values)
    return "%s (%s..%s)" % (fmt.format(med), fmt.format(min(values)), fmt.format(max(values)))


def print_table(results, args):
    headers = ["scenario", "ok"] + [m[1] + " med (min..max)" for m in METRICS]
    rows = []
    for name, _, _, _ in SCENARIOS:
        samples = results[name]["ok"]
        row = [name, "%d/%d" % (len(samples), len(samples) + len(results[name]["errors"]))]
        for key, _, fmt in METRICS:
            row.append(fmt_stat([s[key] for s in samples], fmt))
        rows.append(row)
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    print("  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip())


def print_ratios(results):
    for name, channels, zero_pct, zero_run in SCENARIOS:
        if not zero_pct:
            continue
        base = next((n for n, c, z, _ in SCENARIOS if c == channels and z == 0), None)
        if not base:
            continue
        a = results[name]["ok"]
        b = results[base]["ok"]
        if not a or not b:
            print("%s vs %s: no ratio (missing samples)" % (name, base))
            continue
        parts = []
        for key, label in (("throughput_gbps", "throughput"), ("total_ms", "total time"),
                           ("wire_bytes", "wire bytes")):
            mb = statistics.median([s[key] for s in b])
            ma = statistics.median([s[key] for s in a])
            parts.append("%s x%.2f" % (label, ma / mb if mb else float("nan")))
        print("%s vs %s (medians): %s" % (name, base, ", ".join(parts)))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="repetitions per scenario (default 5)")
    ap.add_argument("--ram", default="1G", help="RAM per run (default 1G)")
    ap.add_argument("--binary", default=default_binary(),
                    help="tern-loopback path (default build/examples/tern-loopback)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="discarded rounds of every scenario before measuring (default 1)")
    ap.add_argument("--transport", default="tcp", choices=["tcp", "unix"])
    ap.add_argument("--timeout", type=int, default=300, help="per-run timeout in s")
    ap.add_argument("--json-out", help="append every run's JSON lines to this file")
    ap.add_argument("extra", nargs="*", help="extra tern-loopback arguments (after --)")
    args = ap.parse_args()

    if not os.access(args.binary, os.X_OK):
        sys.exit("%s: not an executable (build it, or pass --binary)" % args.binary)

    print("tern loopback benchmark: %s RAM, %s, %d rep(s) per scenario, interleaved, "
          "%d warm-up round(s) discarded" % (args.ram, args.transport, args.reps, args.warmup))
    print("host: %s, %d CPU(s), kernel %s, THP %s, load average %s"
          % (platform.node(), os.cpu_count() or 0, platform.release(),
             read_first_line("/sys/kernel/mm/transparent_hugepage/enabled"),
             " ".join(read_first_line("/proc/loadavg").split()[:3])))
    print("destination memory fresh (not pre-touched); source filled before the timed run")
    print()

    for _ in range(args.warmup):
        for name, channels, zero_pct, zero_run in SCENARIOS:
            _, err = run_one(args, name, channels, zero_pct, zero_run)
            if err:
                print("warm-up %-11s FAILED: %s" % (name, err), file=sys.stderr)

    results = {name: {"ok": [], "errors": []} for name, _, _, _ in SCENARIOS}
    out = open(args.json_out, "a") if args.json_out else None
    for rep in range(args.reps):
        for name, channels, zero_pct, zero_run in SCENARIOS:
            sample, err = run_one(args, name, channels, zero_pct, zero_run)
            if err:
                results[name]["errors"].append(err)
                print("rep %d %-11s FAILED: %s" % (rep + 1, name, err), file=sys.stderr)
                continue
            results[name]["ok"].append(sample)
            print("rep %d %-11s %6.2f GB/s  total %6.0f ms  downtime %4.0f ms"
                  % (rep + 1, name, sample["throughput_gbps"], sample["total_ms"],
                     sample["downtime_ms"]), file=sys.stderr)
            if out:
                for side in ("source", "destination"):
                    rec = dict(sample[side])
                    rec["scenario"] = name
                    rec["rep"] = rep + 1
                    out.write(json.dumps(rec, sort_keys=True) + "\n")
                out.flush()
    if out:
        out.close()

    print("load average after: %s" % " ".join(read_first_line("/proc/loadavg").split()[:3]))
    print()
    print_table(results, args)
    print()
    print_ratios(results)
    failed = sum(len(r["errors"]) for r in results.values())
    if failed:
        print("\n%d run(s) failed; first errors:" % failed)
        for name, r in results.items():
            for e in r["errors"][:2]:
                print("  %s: %s" % (name, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
