"""Turns benches/emulators.sh's raw timings into the markdown table of RESULTS.md.

Usage: python3 benches/emulators_report.py RESULTS BENCH_DIR
Each line of RESULTS: BACKEND INPUT DIRECTION CLIENT WALL_S USER_S SYS_S MAXRSS_KIB EMULATOR_CPU_S.
MiB/s are of the input file (the object), whatever the client writes.
"""
import os
import statistics
import sys

rows = {}
for line in open(sys.argv[1]):
    backend, inp, direction, client, wall, user, sys_, rss, srv = line.split()
    rows.setdefault((backend, inp, direction), {}).setdefault(client, []).append(
        (float(wall), float(user) + float(sys_), int(rss) / 1024, float(srv)))
size = lambda inp: os.path.getsize(os.path.join(sys.argv[2], inp))
def name(c):
    if c.startswith("snapjob-c"):
        return f"snapjob, CONCURRENCY={c[9:]}"
    if c.startswith("snapjob-p"):
        return f"snapjob, PART_SIZE={c[9:]}MiB"
    return {"sdk": "SDK"}.get(c, c)

print("| backend | input | direction | client | wall s median [min-max] | MiB/s (median) | client CPU s | peak RSS MiB | emulator CPU s | x SDK |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (backend, inp, direction), by in sorted(rows.items()):
    mib = size(inp) / 2**20
    med = {c: statistics.median(w for w, *_ in v) for c, v in by.items()}
    for c in sorted(by, key=lambda c: (c == "sdk", c)):
        v = by[c]
        walls = [w for w, *_ in v]
        cpu = statistics.median(x[1] for x in v)
        rss = max(x[2] for x in v)
        srv = statistics.median(x[3] for x in v)
        vs = f"{med['sdk'] / med[c]:.2f}" if "sdk" in med else "-"
        print(f"| {backend} | {inp} | {direction} | {name(c)} | {med[c]:.1f} [{min(walls):.1f}-{max(walls):.1f}] "
              f"| {mib / med[c]:.0f} | {cpu:.2f} | {rss:.0f} | {srv:.1f} | {vs} |")
