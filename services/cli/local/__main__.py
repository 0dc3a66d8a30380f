"""`python -m services.cli.local up|stop`: the local stack without the `chancery` CLI.

`chancery up` (services/cli/main.py) is the command people use; this entry point lets
`make stop` and the tests run the supervisor on their own.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .supervisor import StackSettings, run_stack, stop_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.cli.local")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run Kafka, Redis, ingest, projector and API until Ctrl-C")
    up.add_argument(
        "--cluster", action="store_true", help="three Kafka nodes and a Redis Cluster of six"
    )
    stop = sub.add_parser("stop", help="stop what a previous `up` left running")
    stop.add_argument("--state-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = StackSettings()
    if args.command == "up":
        return run_stack(settings, cluster=args.cluster)
    stop_stack(args.state_dir or settings.state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
