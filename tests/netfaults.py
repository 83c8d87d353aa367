"""A blackholed host, made for real: a network namespace behind a veth pair whose replies are
routed into a blackhole. A SYN to it gets no answer at all — the way a stopped Tailscale or
a sleeping Apex looks — unlike a refused port, which answers at once.

Needs root (or CAP_NET_ADMIN) and iproute2; `blackhole()` raises Unavailable otherwise, and
tests skip with that message. Used by tests/test_patio.py and bench/patio.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


class Unavailable(Exception):
    pass


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@contextmanager
def blackhole() -> Iterator[str]:
    """Yield the URL of a host that drops every packet (http://10.213.N.2:4000)."""
    if shutil.which("ip") is None:
        raise Unavailable("iproute2 (`ip`) is not installed")
    n = os.getpid() % 200 + 1
    ns, host_if, ns_if = f"brainbh{n}", f"bbh{n}a", f"bbh{n}b"
    host_ip, apex_ip = f"10.213.{n}.1", f"10.213.{n}.2"
    try:
        _ip("netns", "add", ns)
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise Unavailable(f"cannot create a network namespace here: {detail.strip()}") from exc
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", f"{host_ip}/24", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "addr", "add", f"{apex_ip}/24", "dev", ns_if)
        _ip("-n", ns, "link", "set", ns_if, "up")
        # The drop rule: every reply from the namespace to us goes nowhere, so a SYN is never
        # answered (not even with a RST) and a connection attempt can only time out.
        _ip("-n", ns, "route", "add", "blackhole", f"{host_ip}/32")
        yield f"http://{apex_ip}:4000"
    except subprocess.CalledProcessError as exc:
        raise Unavailable(f"cannot build the blackhole: {exc.stderr.strip()}") from exc
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)
