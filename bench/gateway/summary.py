#!/usr/bin/env python3
"""Builds the Markdown summary of one bench/gateway/run.sh run from the files it left in OUT:
NAME-c1.txt / NAME-c32.txt (wrk --latency), NAME-check.txt (validated warm-up), NAME-ttfb.json
(ttfb.py), NAME-mem.json (procmem.py) and meta.json. Prints it and writes OUT/summary.md.

    summary.py OUT
"""

import json
import os
import re
import sys

# (name, label, is_peer): peers are the gateways Switchyard is compared against.
TARGETS = [
    ("direct", "direct nginx (baseline)", False),
    ("proxy", "nginx reverse proxy (floor: one more hop)", False),
    ("switchyard", "Switchyard, OpenAI dialect", False),
    ("messages", "Switchyard, Anthropic dialect → OpenAI lane", False),
    ("portkey", "Portkey gateway 1.15.2 (node)", True),
    ("litellm", "LiteLLM proxy 1.106.12 (2 workers)", True),
]
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
TARGET_RATIO = 10.0
TARGET_ADDED_P50_MS = 0.15
# Decimal megabytes (10^6 bytes), the stricter reading of "30 MB": 29,297 KiB.
TARGET_RSS_MB = 30.0
MB = 1e6 / 1024  # KiB per MB


def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def wrk(path):
    """req/s, p50 and p99 in ms, and the error count of one wrk --latency output."""
    if not os.path.exists(path):
        return None
    text = open(path).read()
    r = {"rps": None, "p50": None, "p99": None, "errors": 0, "requests": None}
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        r["rps"] = float(m.group(1))
    if m := re.search(r"(\d+) requests in", text):
        r["requests"] = int(m.group(1))
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            r["p" + parts[0][:-1]] = ms(parts[1])
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        r["errors"] += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        r["errors"] += sum(int(g) for g in m.groups())
    return r


def load_json(path):
    return json.load(open(path)) if os.path.exists(path) else None


def fmt_ms(v):
    if v is None:
        return "—"
    return f"{v * 1000:.0f} µs" if v < 1 else f"{v:.2f} ms" if v < 100 else f"{v:.0f} ms"


def fmt_rps(v):
    return "—" if v is None else f"{v:,.0f}"


def main():
    out = sys.argv[1]
    meta = load_json(os.path.join(out, "meta.json")) or {}
    rows = {}
    for name, label, peer in TARGETS:
        c1 = wrk(os.path.join(out, f"{name}-c1.txt"))
        c32 = wrk(os.path.join(out, f"{name}-c32.txt"))
        if not c1 and not c32:
            continue
        check = os.path.join(out, f"{name}-check.txt")
        bad = 0
        if os.path.exists(check):
            text = open(check).read()
            m = re.search(r"checked: \d+ responses, (\d+) bad", text)
            bad = int(m.group(1)) if m else 1  # no verdict line: count it as a failure
            w = wrk(check)
            bad += w["errors"] if w else 0
        ttfb = load_json(os.path.join(out, f"{name}-ttfb.json"))
        mem = load_json(os.path.join(out, f"{name}-mem.json"))
        others = (load_json(os.path.join(out, f"{name}-others.json")) or {}).get("others_cpu_pct")
        errors = bad + sum(w["errors"] for w in (c1, c32) if w) + (ttfb["errors"] if ttfb else 0)
        rows[name] = dict(label=label, peer=peer, c1=c1 or {}, c32=c32 or {}, ttfb=ttfb, mem=mem, errors=errors, others=others)

    direct = rows.get("direct")
    d_p50 = direct["c1"].get("p50") if direct else None
    d_ttfb = direct["ttfb"]["ttfb_p50_ms"] if direct and direct["ttfb"] else None
    peers = [r for r in rows.values() if r["peer"] and r["c32"].get("rps")]
    best = max(peers, key=lambda r: r["c32"]["rps"]) if peers else None

    lines = []
    w = lines.append
    w(f"# Gateway overhead — {meta.get('date', '?')}")
    w("")
    w(
        f"{meta.get('cpu', '?')}, {meta.get('cores', '?')} cores; wrk {meta.get('secs', '?')} s per run "
        f"(after a {meta.get('warm', '?')} s checked warm-up), loopback; streaming TTFB over "
        f"{meta.get('ttfb_n', '?')} sequential requests. Switchyard {meta.get('commit', '?')}."
    )
    if meta.get("load"):
        w("")
        w("Load average (1/5/15 min) before each target: " + "; ".join(f"{k} {v}" for k, v in meta["load"].items()))
    w("")
    w(
        "| target | req/s c32 | p50 c1 | p99 c1 | p50 c32 | p99 c32 | stream TTFB p50 (+ vs direct) "
        "| TTFB p99 | RSS (PSS) | errors | added p50 c1 | req/s ÷ best peer | other work |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        t = r["ttfb"]
        if t and t.get("ttfb_p50_ms") is not None:
            extra = "" if name == "direct" or d_ttfb is None else f" (+{fmt_ms(t['ttfb_p50_ms'] - d_ttfb)})"
            ttfb50, ttfb99 = fmt_ms(t["ttfb_p50_ms"]) + extra, fmt_ms(t["ttfb_p99_ms"])
        else:
            ttfb50 = ttfb99 = "—"
        mem = r["mem"]
        memtxt = f"{mem['rss_kib'] / MB:.1f} MB ({mem['pss_kib'] / MB:.1f} MB)" if mem else "—"
        added = (
            "—"
            if name == "direct" or d_p50 is None or r["c1"].get("p50") is None
            else f"+{fmt_ms(r['c1']['p50'] - d_p50)}"
        )
        ratio = (
            "—"
            if name == "direct" or not best or not r["c32"].get("rps")
            else f"{r['c32']['rps'] / best['c32']['rps']:.2f}×"
        )
        w(
            f"| {r['label']} | {fmt_rps(r['c32'].get('rps'))} | {fmt_ms(r['c1'].get('p50'))} "
            f"| {fmt_ms(r['c1'].get('p99'))} | {fmt_ms(r['c32'].get('p50'))} | {fmt_ms(r['c32'].get('p99'))} "
            f"| {ttfb50} | {ttfb99} | {memtxt} | {r['errors']} | {added} | {ratio} "
            f"| {'—' if r['others'] is None else str(r['others']) + ' %'} |"
        )
    w("")
    w(
        "*other work*: share of the machine's CPU time, during that target's runs, spent by "
        "processes other than nginx, the gateway and the load generators (a disturbed run shows here)."
    )
    w("")
    sw = rows.get("switchyard")
    if sw:
        w("Against the targets (issue 8):")
        w("")
        if best and sw["c32"].get("rps"):
            ratio = sw["c32"]["rps"] / best["c32"]["rps"]
            ok = "met" if ratio >= TARGET_RATIO else "MISSED"
            w(
                f"- throughput ≥ {TARGET_RATIO:.0f}× the best peer ({best['label']}, "
                f"{fmt_rps(best['c32']['rps'])}/s): {ratio:.1f}× — {ok}"
            )
        if d_p50 is not None and sw["c1"].get("p50") is not None:
            added = sw["c1"]["p50"] - d_p50
            # wrk reports whole microseconds: compare in those, not in float milliseconds.
            ok = "met" if round(added * 1000) <= round(TARGET_ADDED_P50_MS * 1000) else "MISSED"
            w(f"- added p50 at c1 ≤ {TARGET_ADDED_P50_MS} ms: {added:.3f} ms — {ok}")
            proxy = rows.get("proxy")
            if proxy and proxy["c1"].get("p50") is not None:
                floor = proxy["c1"]["p50"] - d_p50
                w(
                    f"  - for scale: nginx as a plain reverse proxy adds {floor:.3f} ms here "
                    f"(one more loopback hop, nothing parsed); Switchyard adds {added - floor:+.3f} ms beyond that"
                )
        if sw["mem"]:
            kib = sw["mem"]["rss_kib"]
            ok = "met" if kib / MB < TARGET_RSS_MB else "MISSED"
            w(
                f"- resident memory < {TARGET_RSS_MB:.0f} MB (10^6 bytes; no embedded model): "
                f"{kib / MB:.1f} MB ({kib:,} KiB) — {ok}"
            )
            if "anon_kib" in sw["mem"]:
                w(
                    f"  - of which mapped from the executable and libraries {sw['mem']['file_kib']:,} KiB, "
                    f"anonymous (heap, stacks) {sw['mem']['anon_kib']:,} KiB"
                )
        errs = sum(r["errors"] for n, r in rows.items() if n in ("switchyard", "messages"))
        w(f"- no errors: {errs} — {'met' if errs == 0 else 'MISSED'}")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
