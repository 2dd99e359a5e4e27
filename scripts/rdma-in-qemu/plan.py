#!/usr/bin/env python3
"""Turn `meson introspect --tests BUILD` into the cases run-suite.sh runs.

    plan.py INTROSPECT_JSON BUILD_DIR "DEVS" SCALE OUT_CASES OUT_FILES [name...]

Picks the tests of suite "rdma" (meson names it "<project>:rdma"), or the
named ones. Writes OUT_CASES: one shell line per (case, device),
    run_case NAME DEV ADDR TIMEOUT WORKDIR env K=V... CMD ARGS...
with every word quoted for busybox sh, and OUT_FILES: the files the cases
name (commands and arguments, absolute or relative to the test's workdir,
that exist on this host), which run-suite.sh copies into the guest at the
same paths. Prints the sum of the cases' timeouts and the longest one
(seconds), for the whole-VM timeout and the stall watch.
"""
import json
import os
import shlex
import sys

# where init puts each soft device (scripts/rdma-in-qemu/init)
DEV_ADDR = {"rxe0": "10.77.1.1", "siw0": "10.77.2.1"}
NO_TIMEOUT = 600  # meson's timeout 0 means none; the VM still needs a bound


def main():
    intro, build, devs, scale, out_cases, out_files = sys.argv[1:7]
    names = sys.argv[7:]
    with open(intro) as f:
        tests = json.load(f)
    if names:
        by_name = {t["name"]: t for t in tests}
        missing = [n for n in names if n not in by_name]
        if missing:
            sys.exit("run-suite: no such test in %s: %s" % (build, " ".join(missing)))
        chosen = [by_name[n] for n in names]
    else:
        chosen = [t for t in tests if any(s.split(":")[-1] == "rdma" for s in t["suite"])]
    if not chosen:
        sys.exit("run-suite: %s has no test in suite rdma" % build)

    devs = devs.split()
    for d in devs:
        if d not in DEV_ADDR:
            sys.exit("run-suite: unknown device %s (known: %s)" % (d, " ".join(DEV_ADDR)))
    files = set()
    total = 0
    longest = 0
    lines = []
    for dev in devs:
        for t in chosen:
            timeout = int((t["timeout"] or NO_TIMEOUT) * float(scale))
            total += timeout
            longest = max(longest, timeout)
            env = ["%s=%s" % kv for kv in sorted(t["env"].items())]
            words = ["run_case", t["name"], dev, DEV_ADDR[dev], str(timeout),
                     t["workdir"] or build, "env"] + env + t["cmd"]
            lines.append(" ".join(shlex.quote(w) for w in words))
            for w in t["cmd"]:
                w = w.split("=", 1)[-1]  # --vm=/path too
                # relative paths are the test's: meson runs it in its workdir
                w = os.path.join(t["workdir"] or build, w)
                if os.path.isfile(w):
                    files.add(os.path.normpath(w))
    with open(out_cases, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(out_files, "w") as f:
        f.write("\n".join(sorted(files)) + "\n")
    print(total, longest)


if __name__ == "__main__":
    main()
