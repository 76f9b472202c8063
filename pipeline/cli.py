"""The ``perfplat`` command. Each sub-command is an entry point: settings are read here, once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pipeline.logs import configure_logging
from pipeline.settings import Mode, load_settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="perfplat", description="Real-time performance platform.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole stack on this machine (embedded default)")
    sub.add_parser("api", help="distributed mode: serve ingest and read routes")
    sub.add_parser("worker", help="distributed mode: run a Faust stream worker")
    sub.add_parser("init", help="create the Kafka topics and ClickHouse tables (idempotent)")
    sub.add_parser("ingest", help=argparse.SUPPRESS)  # embedded child processes
    sub.add_parser("core", help=argparse.SUPPRESS)
    sub.add_parser("bench", help="drive a running stack with synthetic Stageprompt traffic (see --help)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark has its own options and reads no settings
        from pipeline import bench as bench_mod

        bench_parser = argparse.ArgumentParser(prog="perfplat bench")
        bench_mod.add_arguments(bench_parser)
        return bench_mod.main(bench_parser.parse_args(argv[1:]))
    args = _parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level)
    if args.command == "up":
        if settings.mode is not Mode.EMBEDDED:
            sys.stderr.write("perfplat up runs the embedded default; unset PERFPLAT_KAFKA_BOOTSTRAP etc.\n")
            return 2
        from pipeline.launcher import up

        return up(settings)
    if args.command == "init":
        from pipeline.init import ensure_tables, ensure_topics
        from pipeline.store import open_store

        created = ensure_topics(settings)
        store = open_store(settings)
        applied = ensure_tables(store)
        store.close()
        sys.stdout.write(f"topics created: {created or 'none'}; migrations applied: {applied or 'none'}\n")
        return 0
    if args.command in ("worker", "core"):
        from stream_processors.worker import run_worker

        run_worker(settings, serve_read=args.command == "core")
        return 0
    from api.serve import run_http

    if args.command == "ingest":
        run_http(settings, "api.serve:embedded_ingest", settings.api.port, settings.api.ingest_processes)
    else:
        run_http(settings, "api.serve:distributed_api", settings.api.port, settings.api.ingest_processes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
