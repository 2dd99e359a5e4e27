#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Codec benchmark on two links: loopback and a veth pair shaped to 1 Gbit/s.

For each link in (loopback, 1gbit) and each codec in (none, zlib, zstd,
xbzrle, auto), migrates --ram of anonymous memory (default 2 GiB, --fill text:
prose-like, compressible) with tern-loopback run as two processes, a
destination (--incoming) and a source (--migrate-to). Runs are interleaved
(every scenario once, then again, --reps times) so that drift in the machine
hits every scenario alike.

The "guest" is tern-loopback's process memory, not a KVM guest (this needs no
/dev/kvm). The destination's memory is fresh (not pre-touched).

Links:
  loopback  both processes in this network namespace, tcp:127.0.0.1:0
  1gbit     two network namespaces made here (tern-a-<pid>, tern-b-<pid>)
            joined by a veth pair 10.77.X.1/30 -- 10.77.X.2/30, with
            `tc qdisc ... root tbf rate 1gbit burst 256kb latency 10ms` on the
            egress of both ends; the destination runs in B, the source in A.
            Removed at the end, also on Ctrl-C, SIGTERM or an exception.
            Needs root (ip netns, tc).

By default the source is idle after its fill: the figures are RAM throughput
and wire bytes of one full pass. --dirty adds a writer (--dirty-rate 32M
--dirty-ws 32M --dirty-bytes 64: a few bytes of a page rewritten at a time)
and --downtime-limit 20, so that the working set takes several rounds and
XBZRLE finds repeated pages in its cache; or pass --dirty-rate/--dirty-ws/
--dirty-bytes/--downtime-limit yourself.

Prints, per link, median (min..max) of the source's figures over the runs
that completed, auto's choices, and ratios versus codec none on the same link
in the same invocation. Standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time

CODECS = ["none", "zlib", "zstd", "xbzrle", "auto"]
LINKS = ["loopback", "1gbit"]
AUTO_CODECS = ["none", "zlib", "zstd", "xbzrle"]

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)

# processes started by this script and still running: killed on the way out
live_procs = []


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted("signal %d" % signum)


def default_binary():
    for d in ("build-rel", "build"):
        p = os.path.join(TOP, d, "examples", "tern-loopback")
        if os.access(p, os.X_OK):
            return p
    return os.path.join(TOP, "build", "examples", "tern-loopback")


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def busy_neighbours():
    """Names of CPU-hungry programs that other helpers may be running (QEMU, compilers)."""
    seen = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm.startswith("qemu") or comm in ("cc1", "ninja", "ld", "tern-loopback",
                                               "tern-vm", "tern-bench"):
            seen[comm] = seen.get(comm, 0) + 1
    return ", ".join("%s x%d" % kv for kv in sorted(seen.items())) or "none seen"


def cpu_snapshot():
    """(host busy CPU seconds, CPU seconds of our waited-for children, monotonic time)."""
    busy = 0.0
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal: all but idle and iowait
        busy = (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy, ru.ru_utime + ru.ru_stime, time.monotonic()


def cpu_share(before, after):
    """Average cores busy on the host, and of those ours, between two snapshots."""
    dt = after[2] - before[2]
    if dt <= 0:
        return None, None
    return (after[0] - before[0]) / dt, (after[1] - before[1]) / dt


def read_first_line(path):
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return "?"


def sh(cmd, check=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=30)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return p


# ---- the shaped link ---------------------------------------------------------


class ShapedLink:
    """Two namespaces and a veth pair with tbf on both ends' egress."""

    def __init__(self, rate, burst, latency):
        pid = os.getpid()
        self.ns_a = "tern-a-%d" % pid
        self.ns_b = "tern-b-%d" % pid
        self.dev_a = "tla%d" % (pid % 100000)
        self.dev_b = "tlb%d" % (pid % 100000)
        x = pid % 250 + 1
        self.addr_a = "10.77.%d.1" % x
        self.addr_b = "10.77.%d.2" % x
        self.rate, self.burst, self.latency = rate, burst, latency
        self.made = []

    def up(self):
        for ns in (self.ns_a, self.ns_b):
            sh(["ip", "netns", "add", ns])
            self.made.append(ns)
        sh(["ip", "link", "add", self.dev_a, "netns", self.ns_a, "type", "veth", "peer", "name",
            self.dev_b, "netns", self.ns_b])
        for ns, dev, addr in ((self.ns_a, self.dev_a, self.addr_a),
                              (self.ns_b, self.dev_b, self.addr_b)):
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            sh(["ip", "-n", ns, "addr", "add", addr + "/30", "dev", dev])
            sh(["ip", "-n", ns, "link", "set", dev, "up"])
            sh(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
                "rate", self.rate, "burst", self.burst, "latency", self.latency])

    def describe(self):
        out = []
        for ns, dev in ((self.ns_a, self.dev_a), (self.ns_b, self.dev_b)):
            p = sh(["ip", "netns", "exec", ns, "tc", "qdisc", "show", "dev", dev], check=False)
            out.append("%s/%s: %s" % (ns, dev, p.stdout.strip().splitlines()[0]
                                      if p.stdout.strip() else "?"))
        return out

    def down(self):
        # deleting a namespace destroys its end of the veth pair, and so the pair
        for ns in reversed(self.made):
            try:
                sh(["ip", "netns", "del", ns], check=False)
            except Exception as e:  # noqa: BLE001 -- best effort on the way out
                print("cleanup: ip netns del %s: %s" % (ns, e), file=sys.stderr)
        self.made = []

    def wrap(self, side):
        return ["ip", "netns", "exec", self.ns_a if side == "source" else self.ns_b]


CHECK_SERVER = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); n = 0; t0 = None
while True:
    b = c.recv(1 << 20)
    if not b: break
    if t0 is None: t0 = time.monotonic()
    n += len(b)
print(n, time.monotonic() - t0, flush=True)
"""

CHECK_CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
buf = b"\0" * (1 << 20)
for _ in range(int(sys.argv[3])): c.sendall(buf)
c.close()
"""


def check_link(link, mib=100):
    """Time a plain TCP transfer of @mib MiB from A to B. Returns bytes/s."""
    srv = subprocess.Popen(link.wrap("destination") + [sys.executable, "-c", CHECK_SERVER,
                                                       link.addr_b],
                           stdout=subprocess.PIPE, text=True)
    live_procs.append(srv)
    try:
        port = srv.stdout.readline().strip()
        subprocess.run(link.wrap("source") + [sys.executable, "-c", CHECK_CLIENT,
                                              link.addr_b, port, str(mib)],
                       check=True, timeout=60)
        n, secs = srv.stdout.readline().split()
        srv.wait(timeout=10)
        return int(n) / float(secs)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
        live_procs.remove(srv)


# ---- one run -----------------------------------------------------------------


class Reader(threading.Thread):
    """Drains one pipe into a list; sets @event when a line matches @pattern."""

    def __init__(self, pipe, pattern=None):
        super().__init__(daemon=True)
        self.pipe, self.pattern = pipe, pattern
        self.lines = []
        self.match = None
        self.event = threading.Event()

    def run(self):
        for line in self.pipe:
            self.lines.append(line.rstrip("\n"))
            if self.pattern and not self.match:
                m = self.pattern.search(line)
                if m:
                    self.match = m
                    self.event.set()
        self.event.set()


LISTEN_RE = re.compile(r"listening on (\S+)")


def parse_json(lines):
    for line in lines:
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def kill_procs(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if p in live_procs:
            live_procs.remove(p)


def run_one(args, link_name, codec, shaped):
    """Returns (sample, error)."""
    if link_name == "loopback":
        wrap_src, wrap_dst, listen = [], [], "tcp:127.0.0.1:0"
    else:
        wrap_src, wrap_dst = shaped.wrap("source"), shaped.wrap("destination")
        listen = "tcp:%s:0" % shaped.addr_b
    common = ["--ram", args.ram, "--channels", str(args.channels), "-q"]
    # the destination's clock starts before the source's fill: give it 30 s
    # more, so that the source's --timeout decides
    dst_cmd = wrap_dst + [args.binary, "--incoming", listen, "--timeout",
                          str(args.timeout + 30)] + common
    procs = []
    t0 = time.monotonic()
    load = loadavg()
    cpu0 = cpu_snapshot()
    try:
        dst = subprocess.Popen(dst_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        procs.append(dst)
        live_procs.append(dst)
        dst_out, dst_err = Reader(dst.stdout), Reader(dst.stderr, LISTEN_RE)
        dst_out.start()
        dst_err.start()
        if not dst_err.event.wait(30) or not dst_err.match:
            return None, "destination did not report its URI: %s" % " | ".join(
                dst_err.lines[-3:] + dst_out.lines[-1:])
        uri = dst_err.match.group(1)
        src_cmd = wrap_src + [args.binary, "--migrate-to", uri, "--fill", args.fill, "--codec",
                              codec, "--timeout", str(args.timeout)] + common + \
            args.dirty_args + args.extra
        src = subprocess.Popen(src_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        procs.append(src)
        live_procs.append(src)
        src_out, src_err = Reader(src.stdout), Reader(src.stderr)
        src_out.start()
        src_err.start()
        # tern-loopback cancels itself after --timeout s of migration; this
        # bound also covers the fill and a process that does not answer
        deadline = time.monotonic() + args.timeout + 60
        for p in procs:
            left = deadline - time.monotonic()
            try:
                p.wait(timeout=max(left, 1))
            except subprocess.TimeoutExpired:
                kill_procs(procs)
                return None, "killed after %d s (timeout + 60 s)" % (args.timeout + 60)
        for r in (dst_out, dst_err, src_out, src_err):
            r.join(5)
    finally:
        kill_procs(procs)
    wall = time.monotonic() - t0
    host_cores, our_cores = cpu_share(cpu0, cpu_snapshot())
    s, d = parse_json(src_out.lines), parse_json(dst_out.lines)
    if src.returncode != 0 or dst.returncode != 0 or not s or not d:
        why = []
        for side in (s, d):
            if side and side.get("error"):
                why.append("%s: %s" % (side["side"], side["error"]))
        if not why:
            why.append("exit src %s dst %s: %s" % (src.returncode, dst.returncode, " | ".join(
                (src_err.lines + dst_err.lines)[-3:])))
        return {"source": s, "destination": d, "wall_s": wall, "load": load,
                "host_cores": host_cores, "our_cores": our_cores}, "; ".join(why)
    wire = s["transferred_bytes"]
    sample = {
        "link": link_name,
        "codec": codec,
        "thr_mbs": s["throughput_bps"] / 1e6,
        "total_s": s["total_ms"] / 1e3,
        "downtime_ms": float(s["downtime_ms"]),
        "wire_mib": wire / 2**20,
        "ratio": s["ram_bytes"] / wire if wire else float("nan"),
        "rounds": s["rounds"],
        "wall_s": wall,
        "load": load,
        "host_cores": host_cores,
        "our_cores": our_cores,
        "source": s,
        "destination": d,
    }
    return sample, None


# ---- report ------------------------------------------------------------------

METRICS = [
    # key, header, format
    ("thr_mbs", "RAM MB/s", "{:.0f}"),
    ("total_s", "total s", "{:.2f}"),
    ("downtime_ms", "downtime ms", "{:.0f}"),
    ("wire_mib", "wire MiB", "{:.0f}"),
    ("ratio", "RAM:wire", "{:.2f}"),
]


def fmt_stat(values, fmt):
    if not values:
        return "-"
    med = statistics.median(values)
    return "%s (%s..%s)" % (fmt.format(med), fmt.format(min(values)), fmt.format(max(values)))


def auto_summary(samples):
    """Packets per codec over all runs, and the codec each run's last decision named."""
    pk = {c: sum(s["source"].get("auto_%s_packets" % c, 0) for s in samples)
          for c in AUTO_CODECS}
    total = sum(pk.values())
    share = ", ".join("%s %.0f%%" % (c, 100.0 * pk[c] / total) for c in AUTO_CODECS
                      if pk[c]) if total else "no packets"
    last = {}
    for s in samples:
        r = s["source"].get("auto_reason", "") or "?"
        last[r.split(":")[0]] = last.get(r.split(":")[0], 0) + 1
    return share, last, [s["source"].get("auto_reason", "") for s in samples]


def print_tables(results, args):
    for link in args.links:
        print("link %s%s" % (link, "" if link == "loopback" else
                             " (veth + tbf rate %s burst %s latency %s)" %
                             (args.rate, args.burst, args.latency)))
        headers = ["codec", "ok"] + [m[1] for m in METRICS] + ["rounds"]
        rows = []
        for codec in args.codecs:
            r = results[(link, codec)]
            ok = r["ok"]
            row = [codec, "%d/%d" % (len(ok), len(ok) + len(r["errors"]))]
            for key, _, fmt in METRICS:
                row.append(fmt_stat([s[key] for s in ok], fmt))
            row.append(fmt_stat([s["rounds"] for s in ok], "{:.0f}"))
            rows.append(row)
        widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
        print("  " + "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip())
        print("  " + "  ".join("-" * w for w in widths))
        for row in rows:
            print("  " + "  ".join(str(c).ljust(widths[i]) for i, c in enumerate(row)).rstrip())
        allok = [x for c in args.codecs for x in results[(link, c)]["ok"]
                 if x.get("host_cores") is not None]
        if allok:
            print("  host CPU during the runs (of %d): busy %s cores, ours %s, others %s "
                  "(others includes interrupt work not charged to a process)" % (
                      os.cpu_count() or 0,
                      fmt_stat([x["host_cores"] for x in allok], "{:.1f}"),
                      fmt_stat([x["our_cores"] for x in allok], "{:.1f}"),
                      fmt_stat([max(x["host_cores"] - x["our_cores"], 0) for x in allok],
                               "{:.1f}")))
        base = results.get((link, "none"), {"ok": []})["ok"]
        if base:
            bt = statistics.median([s["thr_mbs"] for s in base])
            bs = statistics.median([s["total_s"] for s in base])
            bw = statistics.median([s["wire_mib"] for s in base])
            print("  vs none (medians): " + "; ".join(
                "%s throughput x%.2f, time x%.2f, wire x%.2f" % (
                    c, statistics.median([s["thr_mbs"] for s in results[(link, c)]["ok"]]) / bt,
                    statistics.median([s["total_s"] for s in results[(link, c)]["ok"]]) / bs,
                    statistics.median([s["wire_mib"] for s in results[(link, c)]["ok"]]) / bw)
                for c in args.codecs if c != "none" and results[(link, c)]["ok"]))
        if "auto" in args.codecs and results[(link, "auto")]["ok"]:
            share, last, reasons = auto_summary(results[(link, "auto")]["ok"])
            print("  auto packets: %s; last decision per run: %s" % (
                share, ", ".join("%s x%d" % kv for kv in sorted(last.items()))))
            for i, r in enumerate(reasons):
                print("    run %d: %s" % (i + 1, r or "(no decision)"))
        if "xbzrle" in args.codecs and results[(link, "xbzrle")]["ok"]:
            ok = results[(link, "xbzrle")]["ok"]
            print("  xbzrle cache hit rate: %s, delta bytes %s MiB" % (
                fmt_stat([s["source"].get("xbzrle_hit_rate", 0) * 100 for s in ok], "{:.1f}%"),
                fmt_stat([s["source"].get("xbzrle_delta_bytes", 0) / 2**20 for s in ok],
                         "{:.1f}")))
        # the questions the issue asks, answered from the medians
        med = {c: statistics.median([s["thr_mbs"] for s in results[(link, c)]["ok"]])
               for c in args.codecs if results[(link, c)]["ok"]}
        if "auto" in med:
            fixed = {c: v for c, v in med.items() if c != "auto"}
            if fixed:
                best = max(fixed, key=fixed.get)
                print("  auto %.0f MB/s vs best fixed codec %s %.0f MB/s (x%.2f)" % (
                    med["auto"], best, fixed[best], med["auto"] / fixed[best]))
            if "none" in med:
                print("  auto vs none: x%.2f" % (med["auto"] / med["none"]))
        print()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="runs per scenario (default 5)")
    ap.add_argument("--ram", default="2G", help="memory migrated per run (default 2G)")
    ap.add_argument("--channels", type=int, default=2, help="worker channels (default 2)")
    ap.add_argument("--fill", default="text", choices=["text", "random"],
                    help="source page contents (default text: compressible)")
    ap.add_argument("--codecs", default=",".join(CODECS),
                    help="comma-separated subset of %s" % ",".join(CODECS))
    ap.add_argument("--links", default=",".join(LINKS),
                    help="comma-separated subset of %s" % ",".join(LINKS))
    ap.add_argument("--dirty", action="store_true",
                    help="add a writer: --dirty-rate 32M --dirty-ws 32M --dirty-bytes 64, and "
                    "--downtime-limit 20 (each unless given)")
    ap.add_argument("--dirty-rate", help="tern-loopback --dirty-rate (default: idle)")
    ap.add_argument("--dirty-ws", help="tern-loopback --dirty-ws")
    ap.add_argument("--dirty-bytes", help="tern-loopback --dirty-bytes")
    ap.add_argument("--downtime-limit", help="tern-loopback --downtime-limit, ms (library "
                    "default 300)")
    ap.add_argument("--rate", default="1gbit", help="tbf rate of the shaped link (1gbit)")
    ap.add_argument("--burst", default="256kb", help="tbf burst (256kb)")
    ap.add_argument("--latency", default="10ms", help="tbf latency (10ms)")
    ap.add_argument("--no-check", action="store_true",
                    help="skip the plain TCP transfer that checks the shaped link")
    ap.add_argument("--timeout", type=int, default=300,
                    help="per-run migration timeout in s (tern-loopback --timeout; the "
                    "script kills a run 60 s later)")
    ap.add_argument("--binary", default=default_binary(),
                    help="tern-loopback (default build-rel/, else build/examples/tern-loopback)")
    ap.add_argument("--json-out",
                    default=os.path.join(HERE, "results",
                                         "link-%s.jsonl" % time.strftime("%Y%m%d-%H%M%S")),
                    help="append raw JSON lines here (default bench/results/link-<time>.jsonl)")
    ap.add_argument("extra", nargs="*", help="extra tern-loopback source arguments (after --)")
    args = ap.parse_args()

    args.codecs = [c for c in args.codecs.split(",") if c]
    args.links = [ln for ln in args.links.split(",") if ln]
    for c in args.codecs:
        if c not in CODECS:
            ap.error("unknown codec %r" % c)
    for ln in args.links:
        if ln not in LINKS:
            ap.error("unknown link %r" % ln)
    if args.dirty:
        # a working set the link cannot move within the downtime limit, so that
        # it is sent in several rounds and XBZRLE finds its pages in the cache;
        # slow enough that every codec still converges (there is no auto-converge)
        args.dirty_rate = args.dirty_rate or "32M"
        args.dirty_ws = args.dirty_ws or "32M"
        args.dirty_bytes = args.dirty_bytes or "64"
        args.downtime_limit = args.downtime_limit or "20"
    args.dirty_args = []
    for opt, v in (("--dirty-rate", args.dirty_rate), ("--dirty-ws", args.dirty_ws),
                   ("--dirty-bytes", args.dirty_bytes),
                   ("--downtime-limit", args.downtime_limit)):
        if v:
            args.dirty_args += [opt, v]
    if not os.access(args.binary, os.X_OK):
        sys.exit("%s: not an executable (build it, or pass --binary)" % args.binary)
    if "1gbit" in args.links and os.geteuid() != 0:
        sys.exit("the 1gbit link needs root (ip netns, tc); or pass --links loopback")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    print("tern link benchmark, %s" % datetime.datetime.now().isoformat(timespec="seconds"))
    print("binary %s" % args.binary)
    print("%s RAM, --fill %s, %d channel(s), codecs %s, links %s, %d rep(s), interleaved; %s"
          % (args.ram, args.fill, args.channels, ",".join(args.codecs), ",".join(args.links),
             args.reps, " ".join(args.dirty_args) if args.dirty_args else
             "source idle after its fill"))
    print("guest: tern-loopback's anonymous process memory (no KVM guest: /dev/kvm %s)"
          % ("present, unused" if os.path.exists("/dev/kvm") else "absent"))
    print("destination memory fresh (not pre-touched); the fill is not timed")
    print("host: %s, %d CPU(s), kernel %s, THP %s" % (
        platform.node(), os.cpu_count() or 0, platform.release(),
        read_first_line("/sys/kernel/mm/transparent_hugepage/enabled")))
    load_before = loadavg()
    print("load average before: %s; busy neighbours: %s" % (load_before, busy_neighbours()))
    os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
    print("raw JSON lines: %s" % args.json_out)

    results = {(ln, c): {"ok": [], "errors": []} for ln in args.links for c in args.codecs}
    shaped = None
    out = open(args.json_out, "a")
    status = 0
    try:
        if "1gbit" in args.links:
            shaped = ShapedLink(args.rate, args.burst, args.latency)
            shaped.up()
            for line in shaped.describe():
                print("  " + line)
            if not args.no_check:
                bps = check_link(shaped)
                print("  check: plain TCP, 100 MiB from A to B: %.1f MB/s (%.0f Mbit/s)"
                      % (bps / 1e6, bps * 8 / 1e6))
        print()
        for rep in range(args.reps):
            for link in args.links:
                for codec in args.codecs:
                    sample, err = run_one(args, link, codec, shaped)
                    rec_base = {"bench": "link", "link": link, "rep": rep + 1, "codec_set": codec,
                                "ok": err is None, "problem": err,
                                "load": (sample or {}).get("load"),
                                "wall_s": (sample or {}).get("wall_s"),
                                "host_cores": (sample or {}).get("host_cores"),
                                "our_cores": (sample or {}).get("our_cores"),
                                "scenario": {"ram": args.ram, "fill": args.fill,
                                             "channels": args.channels,
                                             "dirty": args.dirty_args, "extra": args.extra,
                                             "tbf": [args.rate, args.burst, args.latency]
                                             if link == "1gbit" else None}}
                    for side in ("source", "destination"):
                        if sample and sample.get(side):
                            rec = dict(rec_base)
                            rec.update(sample[side])
                            out.write(json.dumps(rec, sort_keys=True) + "\n")
                    if not sample:
                        out.write(json.dumps(rec_base, sort_keys=True) + "\n")
                    out.flush()
                    if err:
                        results[(link, codec)]["errors"].append(err)
                        print("rep %d %-8s %-6s FAILED: %s" % (rep + 1, link, codec, err),
                              file=sys.stderr)
                        continue
                    results[(link, codec)]["ok"].append(sample)
                    print("rep %d %-8s %-6s %6.0f MB/s  total %6.2f s  wire %6.0f MiB  "
                          "x%.2f  load %s  cores busy %.1f, ours %.1f"
                          % (rep + 1, link, codec, sample["thr_mbs"], sample["total_s"],
                             sample["wire_mib"], sample["ratio"], sample["load"].split()[0],
                             sample["host_cores"] or 0, sample["our_cores"] or 0),
                          file=sys.stderr)
    except Interrupted as e:
        print("interrupted (%s): cleaning up" % e, file=sys.stderr)
        status = 130
    finally:
        kill_procs(list(live_procs))
        if shaped:
            shaped.down()
        out.close()

    print("load average before %s, after %s; busy neighbours now: %s" % (
        load_before, loadavg(), busy_neighbours()))
    print()
    print_tables(results, args)
    failed = sum(len(r["errors"]) for r in results.values())
    if failed:
        print("%d run(s) failed:" % failed)
        for (link, codec), r in results.items():
            for e in r["errors"]:
                print("  %s %s: %s" % (link, codec, e))
        status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
