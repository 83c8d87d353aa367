#!/usr/bin/env python3
"""Streaming time to first byte: N sequential `stream: true` chat requests over one keep-alive
connection, timing from just before the request is written to the arrival of the first SSE
`data:` line, and to the end of the stream. Standard library only, so the same client cost sits
under every target and the difference against the direct run is the gateway's.

    ttfb.py URL [-n 200] [--warmup 20] [-H 'Name: value']... [--model stream] > result.json
"""

import argparse
import http.client
import json
import math
import statistics
import sys
import time
import urllib.parse


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def one(conn, path, body, headers):
    """One streamed request. Returns (ttfb_s, total_s, error or None)."""
    t0 = time.perf_counter()
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    if resp.status != 200:
        data = resp.read()
        return None, None, f"status {resp.status}: {data[:200]!r}"
    first = None
    seen = bytearray()
    while True:
        line = resp.readline()
        if not line:
            break
        if first is None and line.startswith(b"data:"):
            first = time.perf_counter()
        seen += line
    # readline() stops at a Content-Length end without releasing the connection; read() does.
    seen += resp.read()
    total = time.perf_counter()
    if first is None:
        return None, None, f"no data line: {bytes(seen[:200])!r}"
    if b"[DONE]" not in seen or b'"ok"' not in seen:
        return None, None, f"incomplete stream: {bytes(seen[:300])!r}"
    return first - t0, total - t0, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("-H", dest="headers", action="append", default=[])
    ap.add_argument("--model", default="stream")
    args = ap.parse_args()

    u = urllib.parse.urlsplit(args.url)
    headers = {"Content-Type": "application/json"}
    for h in args.headers:
        name, _, value = h.partition(":")
        headers[name.strip()] = value.strip()
    body = json.dumps(
        {
            "model": args.model,
            "messages": [{"role": "user", "content": "Say hello in one word."}],
            "max_tokens": 5,
            "stream": True,
        }
    ).encode()

    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    ttfb, total, errors = [], [], []
    for i in range(args.warmup + args.n):
        try:
            f, t, err = one(conn, u.path, body, headers)
        except (OSError, http.client.HTTPException) as e:
            f, t, err = None, None, f"{type(e).__name__}: {e}"
            conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        if i < args.warmup:
            continue
        if err:
            errors.append(err)
        else:
            ttfb.append(f)
            total.append(t)
    ttfb.sort()
    total.sort()
    ms = lambda v: None if v is None else round(v * 1000, 4)  # noqa: E731
    json.dump(
        {
            "n": args.n,
            "ok": len(ttfb),
            "errors": len(errors),
            "first_error": errors[0] if errors else None,
            "ttfb_p50_ms": ms(percentile(ttfb, 50)),
            "ttfb_p99_ms": ms(percentile(ttfb, 99)),
            "ttfb_mean_ms": ms(statistics.fmean(ttfb)) if ttfb else None,
            "total_p50_ms": ms(percentile(total, 50)),
            "total_p99_ms": ms(percentile(total, 99)),
        },
        sys.stdout,
        indent=1,
    )
    print()


if __name__ == "__main__":
    main()
