"""Run a command under an address-space cap and write its own peak resident memory.

    python peak.py OUT CAP_BYTES -- ARGV...

A process's ru_maxrss includes the memory of the process it was forked from (the kernel keeps
the old address space's high-water mark when exec replaces it), so a command started by a
large parent (pytest) would report the parent's size. This launcher is small: it forks the
command itself, sets RLIMIT_AS in the child, waits for it with wait4 and writes the child's
ru_maxrss (KiB) to OUT. Exits with the command's exit status (128 + N for a signal). POSIX.
"""

import os
import resource
import sys


def main() -> int:
    out, cap, sep, *argv = sys.argv[1:]
    assert sep == "--" and argv
    pid = os.fork()
    if pid == 0:
        try:
            limit = int(cap)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    _pid, status, usage = os.wait4(pid, 0)
    with open(out, "w") as fh:
        fh.write(str(usage.ru_maxrss))
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
