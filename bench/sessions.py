#!/usr/bin/env python3
"""Holds N idle SMTP sessions on one server and measures what they cost.

Used by bench/sessions (one round against one server). Each session
connects, reads the 220 greeting, sends EHLO, reads the reply and then
stays idle. Before and after, the private memory of the server's smtpd
processes and its anvil (children of the master PID given, found by their
command name) is summed from /proc/PID/smaps_rollup: Pss (shared pages
divided among the processes sharing them) and Private (Private_Clean +
Private_Dirty). With the sessions held, a new client's connect, greeting,
EHLO and QUIT are timed. Prints one JSON object.

    sessions.py PORT MASTER_PID COUNT SOURCE_NET

SOURCE_NET is the first two octets of the loopback addresses the sessions
come from (127.X.Y.Z, 250 sessions per address), so that rounds never run
out of ephemeral ports.
"""

import asyncio
import json
import os
import resource
import socket
import sys
import time

PROGRAMS = ("smtpd", "anvil")


def children(master):
    """PIDs of the master's smtpd and anvil processes."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == master and name in PROGRAMS:
            found.append(int(entry))
    return found


def memory(master):
    """(Pss KiB, Private KiB, process count) summed over the processes."""
    pss = private = count = 0
    for pid in children(master):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                fields = {}
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                        fields[parts[0][:-1]] = int(parts[1])
        except OSError:
            continue
        pss += fields.get("Pss", 0)
        private += fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        count += 1
    return pss, private, count


async def reply(reader):
    """One SMTP reply (all its lines); raises if the server closes."""
    lines = []
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed: " + repr(b"".join(lines)))
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


async def open_session(port, source, held, gate):
    async with gate:
        # A server that stops answering fails the session, not the bench.
        await asyncio.wait_for(handshake(port, source, held), 60)


async def handshake(port, source, held):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    greeting = await reply(reader)
    if not greeting.startswith(b"220"):
        raise ConnectionError(f"greeting: {greeting!r}")
    writer.write(b"EHLO bench.example\r\n")
    ehlo = await reply(reader)
    if not ehlo.startswith(b"250"):
        raise ConnectionError(f"EHLO: {ehlo!r}")
    held.append(writer)


def probe(port):
    """Seconds for a new client's connect, greeting, EHLO and QUIT."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")

        def answer():
            while True:
                line = f.readline()
                if not line:
                    raise ConnectionError("probe: closed")
                if line[3:4] != b"-":
                    return line

        assert answer().startswith(b"220")
        s.sendall(b"EHLO probe.example\r\n")
        assert answer().startswith(b"250")
        s.sendall(b"QUIT\r\n")
        assert answer().startswith(b"221")
    return time.monotonic() - start


async def main():
    port, master, count, net = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))
    before = memory(master)
    held = []
    # At most 100 handshakes in flight: the listen backlog is never the limit.
    gate = asyncio.Semaphore(100)
    sources = [f"127.{net}.{1 + i // 250 // 250}.{1 + (i // 250) % 250}" for i in range(count)]
    started = time.monotonic()
    tasks = [open_session(port, sources[i], held, gate) for i in range(count)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    opened = time.monotonic() - started
    failed = [r for r in results if isinstance(r, BaseException)]
    # Let the server settle (allocations done, nothing in flight).
    await asyncio.sleep(2)
    after = memory(master)
    probes = [probe(port) for _ in range(5)]
    # The sessions are still there after the probes.
    alive = sum(1 for w in held if not w.is_closing())
    for writer in held:
        writer.close()
    print(
        json.dumps(
            {
                "sessions": len(held),
                "failed": len(failed),
                "first_failure": repr(failed[0]) if failed else None,
                "alive": alive,
                "open_seconds": round(opened, 2),
                "before_pss_kib": before[0],
                "after_pss_kib": after[0],
                "before_private_kib": before[1],
                "after_private_kib": after[1],
                "processes_before": before[2],
                "processes_after": after[2],
                "pss_per_session_kib": round((after[0] - before[0]) / max(len(held), 1), 2),
                "private_per_session_kib": round((after[1] - before[1]) / max(len(held), 1), 2),
                "probe_max_seconds": round(max(probes), 4),
                "probe_median_seconds": round(sorted(probes)[2], 4),
            }
        )
    )


asyncio.run(main())
