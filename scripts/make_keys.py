"""Generate ZeroMQ CURVE keypairs for the gateway (``make keys``).

Writes into DIR (default ``var/keys``): ``server.key`` / ``server.key_secret`` (book_builder),
``NAME.key`` / ``NAME.key_secret`` per client (default one client, ``client``) and a copy of
each client public key in ``DIR/authorized/``, the default ``zmq.curve_authorized_dir``.
Directories get mode 0700, files 0600. Existing keypairs are kept: regenerating the server
key would lock every client out. docs/configuration.md ("CURVE across hosts") explains
where each file goes.

    .venv/bin/python scripts/make_keys.py                      # var/keys, client "client"
    .venv/bin/python scripts/make_keys.py --client alice --client bob
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mdgw.runtime.curve import create_keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="var/keys", type=Path, help="default: var/keys")
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="NAME",
        help='a client keypair to create (repeatable; default: "client")',
    )
    args = parser.parse_args()
    for line in create_keys(args.dir, args.client or ["client"]):
        print(line)


if __name__ == "__main__":
    main()
