"""Turns benches/peers.sh's raw timings into the markdown tables of RESULTS.md.

Usage: python3 benches/peers_report.py RESULTS BENCH_DIR
Each line of RESULTS: PROFILE INPUT DIRECTION CLIENT WALL_S USER_S SYS_S MAXRSS_KIB.
"""
import os
import statistics
import sys

rows = {}
for line in open(sys.argv[1]):
    profile, inp, direction, client, wall, user, sys_, rss = line.split()
    rows.setdefault((profile, inp, direction), {}).setdefault(client, []).append(
        (float(wall), float(user) + float(sys_), int(rss) / 1024))
size = lambda inp: os.path.getsize(os.path.join(sys.argv[2], inp))
peers = ["s3cmd", "aws", "rclone", "s5cmd"]

print("| profile | input | direction | client | MiB/s median [min-max] | client CPU s | CPU s/GiB | peak RSS MiB | x s3cmd | x fastest peer |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (profile, inp, direction), by in rows.items():
    if profile == "memory":
        continue
    mib = size(inp) / 2**20
    rate = {c: mib / statistics.median(w for w, _, _ in v) for c, v in by.items()}
    fastest = max(rate[c] for c in peers if c in rate)
    for c, v in by.items():
        walls = [w for w, _, _ in v]
        cpu = statistics.median(x for _, x, _ in v)
        rss = max(r for _, _, r in v)
        name = {"curl": "curl (ceiling: one unsigned PUT/GET)",
                "snapjob-put": "snapjob, one PUT",
                "snapjob-parts": "snapjob, parts (SINGLE_PUT_MAX=0)",
                "before": "snapjob before",
                "before-put": "snapjob before, one PUT",
                "before-parts": "snapjob before, parts"}.get(c, c)
        vs_s3cmd = f"{rate[c] / rate['s3cmd']:.2f}" if "s3cmd" in rate else "-"
        print(f"| {profile} | {inp} | {direction} | {name} | {rate[c]:.0f} [{mib / max(walls):.0f}-{mib / min(walls):.0f}] "
              f"| {cpu:.2f} | {cpu / (mib / 1024):.2f} | {rss:.0f} | {vs_s3cmd} | {rate[c] / fastest:.2f} |")
    # Rate against s5cmd run by run (the i-th of each client ran back to back, so a
    # machine whose speed drifts, or that others load, moves both alike).
    for c in by:
        if c.startswith(("snapjob", "before")) and "s5cmd" in by:
            r = sorted(s / w for (w, _, _), (s, _, _) in zip(by[c], by["s5cmd"]))
            print(f"| {profile} | {inp} | {direction} | **{c} / s5cmd, run by run** | **{statistics.median(r):.2f} [{r[0]:.2f}-{r[-1]:.2f}]** | | | | | |")
    for c in ("snapjob", "snapjob-put", "snapjob-parts"):
        if "curl" in rate and c in rate:
            print(f"| {profile} | {inp} | {direction} | **{c} / curl ceiling** | **{100 * rate[c] / rate['curl']:.0f}%** | | | | | |")

print()
print("| file | client | MiB | wall s median | MiB/s | client CPU s | CPU s/GiB | peak RSS MiB median [min-max] |")
print("|---|---|---|---|---|---|---|---|")
for (profile, inp, direction), by in rows.items():
    if profile != "memory":
        continue
    for c, v in by.items():
        mib = size(inp) / 2**20
        wall = statistics.median(w for w, _, _ in v)
        cpu = statistics.median(x for _, x, _ in v)
        rss = [r for _, _, r in v]
        print(f"| {inp} | {c} | {mib:.0f} | {wall:.2f} | {mib / wall:.0f} | {cpu:.2f} | {cpu / (mib / 1024):.2f} | "
              f"{statistics.median(rss):.1f} [{min(rss):.1f}-{max(rss):.1f}] |")
