#!/usr/bin/env python3
"""Turns the anchors' results file (our rows included, group `proj`) into bench-results.json
(spec names; anchors renamed anchor.*) and prints a table with ratios against the anchors of the
same run. Medians are over the run's passes."""
import json, statistics, sys

ANCHOR_NAMES = {"uds_stream_rtt": "anchor.uds_rtt", "spawn_true": "anchor.spawn_true",
                "bwrap_all": "anchor.bwrap_true", "dbus_sdbus_rtt": "anchor.dbus_rtt"}
# Our row -> the anchors it is stated against (spec and issue targets). "anchor.floor" is the
# lowest same-run raw-socket floor (spec: the floor moves with CPU placement; ratios to "the
# floor" use the lowest of uds_stream_rtt, _pin_same and _pin_cross).
RATIOS = {
    "jail.spawn_true": ["anchor.bwrap_true", "anchor.spawn_true"], "jail.spawn_true.cold": ["anchor.bwrap_true", "anchor.spawn_true"],
    "launch.cold": ["anchor.bwrap_true", "launch.cold.single"], "launch.pool": ["anchor.bwrap_true", "anchor.spawn_true", "launch.pool.single"],
    "launch.cold.registry_hang": ["launch.cold", "anchor.bwrap_true"],
    # Privilege separation's cost: each row beside the same run's single-process design (--no-drop).
    "launch.cold.single": ["anchor.bwrap_true"], "launch.pool.single": ["anchor.bwrap_true"], "bridge.rtt.single": ["anchor.floor"],
    "bridge.rtt": ["anchor.floor", "anchor.uds_rtt", "anchor.dbus_rtt", "bridge.rtt.single"], "bridge.rtt.host": ["anchor.floor", "anchor.uds_rtt", "anchor.dbus_rtt"],
    "broker.rtt": ["anchor.floor", "anchor.uds_rtt", "anchor.dbus_rtt"], "broker.rtt.host": ["anchor.floor", "anchor.uds_rtt", "anchor.dbus_rtt"],
    "package.verify": ["anchor.sha256sum"],
    "launch.node": ["anchor.node_bwrap", "anchor.node_bare"], "launch.python": ["anchor.python_bwrap", "anchor.python_bare"],
    "launch.node.prewarmed": ["anchor.node_bwrap", "anchor.node_bare"],
    "launch.python.prewarmed": ["anchor.python_bwrap", "anchor.python_bare"],
}
FLOORS = ["anchor.uds_rtt", "anchor.uds_stream_rtt_pin_same", "anchor.uds_stream_rtt_pin_cross"]

def num(x):
    try: return float(x)
    except ValueError: return None

def main(src, dst):
    rows, in_rows = {}, False
    for line in open(src, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("## machine-readable rows"): in_rows = True; continue
        if in_rows and (not line or line.startswith("## ")): in_rows = False
        if not in_rows: continue
        f = line.split("|")
        if len(f) < 8 or f[2] in ("FAIL", "SKIP"): continue
        group, name = f[0], f[1]
        if group != "proj": name = ANCHOR_NAMES.get(name, "anchor." + name)
        r = rows.setdefault(name, {"p50": [], "p99": [], "tp": [], "unit": f[6], "notes": f[7]})
        for k, v in (("p50", f[2]), ("p99", f[3]), ("tp", f[5])):
            if num(v) is not None: r[k].append(num(v))
    results = []
    for name, r in sorted(rows.items()):
        med = lambda xs: round(statistics.median(xs), 2) if xs else None
        results.append({"name": name, "p50_us": med(r["p50"]), "p99_us": med(r["p99"]),
                        "throughput_per_s": med(r["tp"]), "passes": max(len(r["p50"]), len(r["tp"])),
                        "notes": r["notes"]})
    by = {r["name"]: r for r in results}
    floors = [by[f] for f in FLOORS if f in by and by[f]["p50_us"]]
    if floors:
        low = min(floors, key=lambda f: f["p50_us"])
        by["anchor.floor"] = dict(low, name=low["name"])
    for r in results:
        for a in RATIOS.get(r["name"], []):
            if a in by and r["p50_us"] and by[a]["p50_us"]:
                label = f"anchor.floor={by[a]['name']}" if a == "anchor.floor" else a
                r.setdefault("ratios", {})[label] = round(r["p50_us"] / by[a]["p50_us"], 3)
                if r["p99_us"] and by[a]["p99_us"]:
                    r.setdefault("ratios_p99", {})[label] = round(r["p99_us"] / by[a]["p99_us"], 3)
    json.dump({"results": results}, open(dst, "w"), indent=2)
    print(f"{'name':28} {'p50 us':>10} {'p99 us':>10} {'tput/s':>12}  ratios (p50 / anchor p50 | p99 / anchor p99, same run)")
    for r in results:
        p99s = r.get("ratios_p99", {})
        rat = ", ".join(f"{v}x|{p99s.get(k, '-')}x {k}" for k, v in r.get("ratios", {}).items())
        fmt = lambda v: "-" if v is None else f"{v:.1f}"
        print(f"{r['name']:28} {fmt(r['p50_us']):>10} {fmt(r['p99_us']):>10} {fmt(r['throughput_per_s']):>12}  {rat}")
    print(f"wrote {dst}")

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
