#!/usr/bin/env python3
"""Folds `perf script -F comm,tid,ip,sym` output (DWARF call graphs) into flamegraph-ready stacks
and summarises them: CPU share by thread, and inclusive share of the frames of our own crates.

    perf script -i perf.data -F comm,tid,ip,sym | perf-fold.py FOLDED_OUT > summary.txt

FOLDED_OUT holds one `thread;root;...;leaf count` line per distinct stack (the input of
flamegraph.pl or inferno-flamegraph).
"""

import collections
import re
import sys


def stacks(lines):
    comm, frames = None, []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if comm is not None and frames:
                yield comm, frames[::-1]
            comm, frames = None, []
        elif not line[0].isspace():
            comm, frames = re.sub(r"\s+\d+\s*$", "", line).strip().replace(" ", "_"), []
        else:
            parts = line.strip().split(" ", 1)
            sym = parts[1] if len(parts) > 1 else parts[0]
            frames.append(sym.replace(" (inlined)", "").replace(";", ":"))
    if comm is not None and frames:
        yield comm, frames[::-1]


def main():
    folded = collections.Counter()
    threads = collections.Counter()
    ours = collections.Counter()
    total = 0
    for comm, frames in stacks(sys.stdin):
        total += 1
        folded[";".join([comm] + frames)] += 1
        threads[comm] += 1
        seen = set()
        for f in frames:
            # Our crates' functions (not their generic instantiations inside others' frames).
            m = re.match(r"^<?(switchyard[a-z_]*::[A-Za-z0-9_:{}#<>]+)", f)
            if m and m.group(1) not in seen:
                seen.add(m.group(1))
                ours[m.group(1)] += 1
    with open(sys.argv[1], "w") as out:
        for s, c in folded.items():
            out.write(f"{s} {c}\n")
    print(f"{total} samples")
    print("\nCPU by thread:")
    for t, c in threads.most_common():
        print(f"  {100 * c / total:5.1f}%  {t}")
    print("\nInclusive share of our functions (time spent in them and what they call):")
    for f, c in ours.most_common(40):
        if c / total < 0.005:
            break
        print(f"  {100 * c / total:5.1f}%  {f}")


if __name__ == "__main__":
    main()
