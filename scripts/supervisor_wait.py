#!/usr/bin/env python3
"""Wait for supervisord states, for the Makefile (make up/demo/restart/down) and the e2e test.

    supervisor_wait.py running [--timeout 30]
        Until every process of supervisord is RUNNING. Fails at once when one is FATAL,
        printing the end of its log (a bad config shows its one-line error there).
    supervisor_wait.py gone PID... [--timeout 30]
        Until none of these processes exists any more (zombies count as gone).

The control socket is the ``serverurl`` of the conf's [supervisorctl] section (``-c``,
default deploy/supervisord.conf beside this script), read the way supervisorctl reads it,
unless --serverurl is given. Exit status: 0 done, 1 failed or timed out, 2 bad usage.

Run it with the project's venv (the Makefile's ``$(PY)``): it imports supervisor and mdgw.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import time
import xmlrpc.client
from pathlib import Path
from typing import Any

from mdgw.testing.processes import pid_alive

POLL_S = 0.2
LOG_LINES = 5
DEFAULT_CONF = Path(__file__).resolve().parents[1] / "deploy" / "supervisord.conf"


def serverurl_of(conf: str) -> str:
    """The control socket URL supervisorctl would use with ``-c conf``."""
    from supervisor.options import ClientOptions

    options = ClientOptions()
    options.realize(["-c", conf])
    url: str = options.serverurl
    return url


def rpc(serverurl: str) -> Any:
    # supervisor's own transport speaks XML-RPC over its unix socket.
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, serverurl=serverurl)
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport)


def log_tail(path: str, lines: int = LOG_LINES) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            return f.read().decode("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return []


def wait_running(serverurl: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    proxy = rpc(serverurl)
    last: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            last = proxy.supervisor.getAllProcessInfo()
        except (OSError, xmlrpc.client.Error, http.client.HTTPException):
            # supervisord is still starting (no socket yet, or it is not answering yet).
            proxy = rpc(serverurl)  # a fresh connection: the transport keeps a broken one
            time.sleep(POLL_S)
            continue
        fatal = [p for p in last if p["statename"] == "FATAL"]
        if fatal:
            for p in fatal:
                name = f"{p['group']}:{p['name']}"
                print(f"{name} is FATAL: {p['description']}", file=sys.stderr)
                for line in log_tail(p["stdout_logfile"]):
                    print(f"  {name} log: {line}", file=sys.stderr)
            return 1
        if last and all(p["statename"] == "RUNNING" for p in last):
            return 0
        time.sleep(POLL_S)
    waiting = [f"{p['group']}:{p['name']} {p['statename']}" for p in last] or ["no reply"]
    print(f"not all RUNNING after {timeout:g}s: {', '.join(waiting)}", file=sys.stderr)
    return 1


def wait_gone(pids: list[int], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    left = [pid for pid in pids if pid > 0]
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if pid_alive(pid)]
        if left:
            time.sleep(POLL_S)
    if left:
        print(f"still running after {timeout:g}s: pids {left}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument(
        "-c", "--configuration", default=str(DEFAULT_CONF), help="supervisord conf file"
    )
    parser.add_argument("--serverurl", help="the control socket (default: from the conf)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("running", help="until every process is RUNNING")
    gone = commands.add_parser("gone", help="until these pids have exited")
    gone.add_argument("pids", nargs="*", type=int)
    args = parser.parse_args(argv)
    if args.command == "running":
        return wait_running(args.serverurl or serverurl_of(args.configuration), args.timeout)
    return wait_gone(args.pids, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
