#!/usr/bin/env python3
"""Memory and CPU time of process trees, from /proc: each root PID and all its descendants.

    procmem.py PID [PID...]  ->  {"procs": N, "rss_kib": ..., "pss_kib": ..., "anon_kib": ...,
                                  "file_kib": ..., "cpu_ticks": ...}

cpu_ticks is user + system time in clock ticks (run.sh uses it to tell how much of the CPU
time spent during a target's runs was other work on the machine).

RSS is summed as the issue asks (pages shared between processes count once per process, so
this over-states forked workers); PSS divides shared pages among their users and is the
fairer total for a multi-process server.
"""

import json
import os
import sys


def children():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def field(path, name):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return 0


def main():
    kids = children()
    todo, tree = [int(a) for a in sys.argv[1:]], []
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(kids.get(p, []))
    rss = sum(field(f"/proc/{p}/status", "VmRSS") for p in tree)
    pss = sum(field(f"/proc/{p}/smaps_rollup", "Pss") for p in tree)
    # RssAnon: heap, stacks, relocated data. RssFile: mapped pages of the executable and shared
    # libraries (code, read-only data), which the kernel can drop and read back.
    anon = sum(field(f"/proc/{p}/status", "RssAnon") for p in tree)
    file = sum(field(f"/proc/{p}/status", "RssFile") for p in tree)
    json.dump(
        {"procs": len(tree), "rss_kib": rss, "pss_kib": pss, "anon_kib": anon, "file_kib": file,
         "cpu_ticks": sum(map(ticks, tree))},
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
