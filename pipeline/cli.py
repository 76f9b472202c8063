"""The ``perfplat`` command. Each sub-command is an entry point: settings are read here, once."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

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
    sub.add_parser("upload", help="POST a CSV or Excel file's records to a data set's write API (see --help)")
    sub.add_parser("simulate", help="send a synthetic day of traffic for a few services (see --help)")
    ds = sub.add_parser("datasets", help="list, create and configure data sets, rotate their tokens")
    ds_sub = ds.add_subparsers(dest="action", required=True)
    ds_sub.add_parser("list", help="every data set and its settings (never the tokens)")
    create = ds_sub.add_parser("create", help="add a data set; prints its bearer token once")
    create.add_argument("data_group")
    create.add_argument("data_type")
    create.add_argument("--token", help="use this token (e.g. one migrated from the original platform)")
    create.add_argument(
        "--set", action="append", default=[], metavar="KEY=JSON", help="a setting, e.g. realtime=true"
    )
    rotate = ds_sub.add_parser("rotate-token", help="give a data set a new bearer token; prints it once")
    rotate.add_argument("name")
    configure = ds_sub.add_parser("configure", help="change settings of a data set")
    configure.add_argument("name")
    configure.add_argument("--set", action="append", default=[], metavar="KEY=JSON", required=True)
    _services_parser(sub)
    _alerts_parser(sub)
    sub.add_parser("probe", help="check every service's health-check URL on its schedule (availability)")
    return p


def _services_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sv = sub.add_parser("services", help="list, add and configure services, rotate their tokens")
    sv_sub = sv.add_subparsers(dest="action", required=True)
    sv_sub.add_parser("list", help="every service and its settings (never the tokens)")
    add = sv_sub.add_parser("add", help="add a service; prints its bearer token once")
    add.add_argument("slug", help="the service's slug, as the beacon and the events name it")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--group", help="the department's slug")
    add.add_argument("--health-check-url", help="http(s) URL the prober checks")
    add.add_argument("--token", help="use this token instead of a generated one")
    add.add_argument(
        "--set", action="append", default=[], metavar="KEY=JSON", help="a setting, e.g. probe_interval_s=30"
    )
    rotate = sv_sub.add_parser("rotate-token", help="give a service a new bearer token; prints it once")
    rotate.add_argument("slug")
    configure = sv_sub.add_parser("configure", help="change settings of a service")
    configure.add_argument("slug")
    configure.add_argument("--set", action="append", default=[], metavar="KEY=JSON", required=True)


def _settings_pairs(pairs: list[str]) -> dict[str, object]:
    import orjson

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set takes KEY=VALUE, not {pair!r}")
        try:
            out[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            out[key] = value  # a bare word is a string
    return out


def _datasets(args: argparse.Namespace, path: Path) -> int:
    from pipeline.datasets import DataSetConfig, RegistryFile

    registry = RegistryFile(path)
    try:
        if args.action == "list":
            for config in sorted(registry.reload().sets.values(), key=lambda c: c.name):
                sys.stdout.write(orjson_line(config.as_public()))
            return 0
        if args.action == "create":
            doc = {"data_group": args.data_group, "data_type": args.data_type, **_settings_pairs(args.set)}
            config = DataSetConfig.from_doc(doc)
            token = registry.create(config, args.token)
            sys.stdout.write(f"created {config.name}; bearer token (shown once): {token}\n")
            return 0
        if args.action == "rotate-token":
            token = registry.rotate_token(args.name)
            sys.stdout.write(f"new bearer token for {args.name} (shown once): {token}\n")
            return 0
        config = registry.configure(args.name, **_settings_pairs(args.set))
        sys.stdout.write(orjson_line(config.as_public()))
        return 0
    except KeyError as exc:
        sys.stderr.write(f"no data set named {exc.args[0]}\n")
    except (TypeError, ValueError) as exc:
        sys.stderr.write(f"{exc}\n")
    return 1


def _services(args: argparse.Namespace, path: Path) -> int:
    from pipeline.services import ServiceConfig, ServiceRegistryFile

    registry = ServiceRegistryFile(path)
    try:
        if args.action == "list":
            for _, config in sorted(registry.reload().services.items()):
                sys.stdout.write(orjson_line(config.as_public()))
            return 0
        if args.action == "add":
            named = {
                k: v
                for k, v in (
                    ("name", args.name),
                    ("group", args.group),
                    ("health_check_url", args.health_check_url),
                )
                if v is not None
            }
            doc = {**_settings_pairs(args.set), "slug": args.slug, **named}
            if {"token_hash", "bearer_token"} & set(doc):
                raise ValueError("give a token with --token")
            service = ServiceConfig.from_doc(doc)
            token = registry.create(service, args.token)
            sys.stdout.write(f"added {service.slug}; bearer token (shown once): {token}\n")
            return 0
        if args.action == "rotate-token":
            token = registry.rotate_token(args.slug)
            sys.stdout.write(f"new bearer token for {args.slug} (shown once): {token}\n")
            return 0
        changes = _settings_pairs(args.set)
        if {"slug", "token_hash", "bearer_token"} & set(changes):
            raise ValueError("the slug and the token cannot be changed here (rotate-token gives a new token)")
        service = registry.configure(args.slug, **changes)
        sys.stdout.write(orjson_line(service.as_public()))
        return 0
    except KeyError as exc:
        sys.stderr.write(f"no service named {exc.args[0]}\n")
    except (TypeError, ValueError) as exc:
        sys.stderr.write(f"{exc}\n")
    return 1


def _alerts_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    al = sub.add_parser("alerts", help="a service's alert rules, their states and notifications")
    al_sub = al.add_subparsers(dest="action", required=True)
    ls = al_sub.add_parser("list", help="the rules with their states, then the last notifications")
    ls.add_argument("service")
    ls.add_argument("--url", help="base URL of the running API (default http://<api.host>:<api.port>)")
    ls.add_argument("--json", action="store_true", help="print the API's JSON as it is")


def _alerts(args: argparse.Namespace, default_url: str) -> int:
    """Asks the running API (the store may belong to another process: chdb allows one)."""
    from urllib.parse import quote

    import httpx

    base = (args.url or default_url).rstrip("/")
    try:
        answer = httpx.get(f"{base}/services/{quote(args.service, safe='')}/alerts", timeout=10)
        doc = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        sys.stderr.write(f"no answer from the API at {base}: {exc}\n")
        return 1
    if answer.status_code != 200:
        sys.stderr.write(f"{doc.get('message', answer.status_code) if isinstance(doc, dict) else doc}\n")
        return 1
    if args.json:
        sys.stdout.write(orjson_line(doc))
        return 0
    for rule in doc["rules"]:
        state = rule["state"]
        if rule["kind"] == "kpi":
            what = f"{rule['kpi']} {rule['op']} {rule['threshold']:g} ({rule['period']})"
        else:
            what = f"{rule['data_set']} not updated within max_age_expected"
        since = f" since {state['since']}" if state["since"] else ""
        sys.stdout.write(f"{rule['id']}: {state['status']}{since}, value {state['value']}; {what}\n")
    for n in doc["notifications"]:
        sent = "delivered" if n["delivered"] else f"not delivered ({n['attempts']} attempts: {n['error']})"
        sys.stdout.write(f"{n['at']} {n['rule']} {n['status']} value {n['value']}: {sent}\n")
    return 0


def orjson_line(doc: object) -> str:
    import orjson

    return orjson.dumps(doc).decode() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["bench", "kpi"]:  # the live-KPI targets, on a stack of its own
        from pipeline import bench_kpi

        kpi_parser = argparse.ArgumentParser(prog="perfplat bench kpi")
        bench_kpi.add_arguments(kpi_parser)
        return bench_kpi.main(kpi_parser.parse_args(argv[2:]))
    if argv[:2] == ["bench", "data-sets"]:  # the data-set API's targets, on a stack of its own
        from pipeline import bench_datasets

        ds_parser = argparse.ArgumentParser(prog="perfplat bench data-sets")
        bench_datasets.add_arguments(ds_parser)
        return bench_datasets.main(ds_parser.parse_args(argv[2:]))
    if argv[:2] == ["bench", "dashboard"]:  # the dashboard's first render, on a stack of its own
        from pipeline import bench_dashboard

        dash_parser = argparse.ArgumentParser(prog="perfplat bench dashboard")
        bench_dashboard.add_arguments(dash_parser)
        return bench_dashboard.main(dash_parser.parse_args(argv[2:]))
    if argv[:1] == ["bench"]:  # the benchmark has its own options and reads no settings
        from pipeline import bench as bench_mod

        bench_parser = argparse.ArgumentParser(prog="perfplat bench")
        bench_mod.add_arguments(bench_parser)
        return bench_mod.main(bench_parser.parse_args(argv[1:]))
    if argv[:1] == ["upload"]:  # a client of some write API: reads no settings either
        from producers import uploader

        upload_parser = argparse.ArgumentParser(prog="perfplat upload")
        uploader.add_arguments(upload_parser)
        return uploader.main(upload_parser.parse_args(argv[1:]))
    if argv[:1] == ["simulate"]:  # a producer with its own options: reads no settings
        from producers import simulate

        simulate_parser = argparse.ArgumentParser(prog="perfplat simulate")
        simulate.add_arguments(simulate_parser)
        return simulate.main(simulate_parser.parse_args(argv[1:]))
    args = _parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level)
    if args.command == "datasets":
        return _datasets(args, settings.registry_path)
    if args.command == "services":
        return _services(args, settings.services_path)
    if args.command == "alerts":
        return _alerts(args, f"http://{settings.api.host}:{settings.api.port}")
    if args.command == "probe":
        from producers.prober import run_prober

        return run_prober(settings)
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
