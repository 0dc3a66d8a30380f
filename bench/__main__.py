"""`python -m bench [NAME ...]`: run every benchmark (or those named) and print the table."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import time
from pathlib import Path

from .framework import Row, local_servers, print_table, save

RESULTS = Path(__file__).parent / "results" / "latest.json"


def _modules(selected: list[str]) -> list[str]:
    names = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )
    if selected:
        names = [n for n in names if n.removeprefix("bench_") in selected or n in selected]
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller loads, for a smoke run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    modules = _modules(args.names)
    if not modules:
        print("no benchmark matches", args.names, file=sys.stderr)
        return 2
    rows: list[Row] = []
    failed: list[str] = []
    with local_servers() as env:
        for name in modules:
            module = importlib.import_module(f"bench.{name}")
            print(f"== {name} ...", flush=True)
            started = time.perf_counter()
            try:
                rows.extend(module.run(env, quick=args.quick))
            except Exception:
                logging.exception("benchmark %s failed", name)
                failed.append(name)
            print(f"   {time.perf_counter() - started:.1f} s", flush=True)
    print()
    print(print_table(rows))
    save(rows, RESULTS)
    print(f"\nresults: {RESULTS}")
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
