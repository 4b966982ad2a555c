"""The ``qunyun`` command. Its verbs and output formats are a stable contract (PRODUCT.md)."""

from __future__ import annotations

import sys
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

import typer

from qunyun.acquisition.cli import app as channels_app
from qunyun.cli_support import (
    QunyunGroup,
    database_label,
    fail_line,
    organisation_slugs,
    require_schema,
    resolve_org,
    schema_revisions,
    set_debug,
    tell,
    use_project_database,
)
from qunyun.connections.cli import app as connections_app
from qunyun.connectors.telegram.cli import app as telegram_app
from qunyun.errors import QunyunError
from qunyun.livecodes.cli import app as livecodes_app
from qunyun.locale import Msg
from qunyun.moderation.cli import app as moderation_app
from qunyun.onboarding.cli import app as onboarding_app
from qunyun.privacy.cli import app as privacy_app
from qunyun.sop.cli import app as sop_app

# How long a server process may take to answer uvicorn's health check (starting up included).
WORKER_HEALTHCHECK_SECONDS = 60

app = typer.Typer(
    cls=QunyunGroup,
    help="qunyun — community operations platform",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
events_app = typer.Typer(help="Platform events (interchange format v1)", no_args_is_help=True)
stats_app = typer.Typer(help="Daily and weekly metrics", no_args_is_help=True)
org_app = typer.Typer(help="Organisations and staff accounts", no_args_is_help=True)
staff_app = typer.Typer(help="Staff accounts", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(staff_app, name="staff")
app.add_typer(events_app, name="events")
app.add_typer(stats_app, name="stats")
app.add_typer(org_app, name="org")
app.add_typer(connections_app, name="connections")
app.add_typer(channels_app, name="channels")
app.add_typer(livecodes_app, name="livecodes")
app.add_typer(onboarding_app, name="onboarding")
app.add_typer(sop_app, name="sop")
app.add_typer(privacy_app, name="privacy")
app.add_typer(moderation_app, name="moderation")
app.add_typer(telegram_app, name="telegram")

OrgOption = Annotated[
    str | None,
    typer.Option("--org", envvar="QUNYUN_ORG", help="Organisation slug; may be left out when there is only one."),
]


def _fail(exc: QunyunError) -> None:
    fail_line(exc.msg if exc.msg is not None else exc.message)
    raise typer.Exit(code=2)


def _fail_with(msg: Msg, code: int = 2) -> None:
    fail_line(msg)
    raise typer.Exit(code=code)


def _show_database() -> None:
    tell(Msg("cli.database", database=database_label()))


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Create or upgrade the schema at QUNYUN_DATABASE_URL (default: SQLite file var/qunyun.db)."""
    from qunyun.db.migrate import current_revision, upgrade
    from qunyun.db.session import get_engine

    _show_database()
    engine = get_engine()
    upgrade(engine, revision)
    tell(Msg("cli.schema_at", revision=current_revision(engine)))


@db_app.command("status")
def db_status() -> None:
    """Name the database this command uses and whether its schema is current (exit 1 if not)."""
    _show_database()
    current, head, _ = schema_revisions()
    if current == head:
        tell(Msg("cli.schema_at", revision=current))
        return
    require_schema()  # raises the one-line reason: no database, no schema, old or newer schema


@events_app.command("import")
def events_import(
    path: Annotated[str, typer.Argument(help="JSON Lines file, or - for standard input")],
    org: OrgOption = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Skip bad lines (each is reported) instead of aborting")
    ] = False,
    platform: Annotated[str, typer.Option(help="Platform of the groups and members in the file")] = "import",
    batch_size: Annotated[int, typer.Option(help="Events per transaction chunk")] = 20000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    connection: Annotated[
        int | None,
        typer.Option(
            "--connection",
            min=1,
            help="Connection id the imported groups belong to (its platform is theirs); "
            "default: the organisation's default connection",
        ),
    ] = None,
) -> None:
    """Import event interchange JSONL: all or nothing unless --skip-invalid."""
    from qunyun.connections.cli import import_connection
    from qunyun.ingestion.importer import import_file

    require_schema()
    org_slug = resolve_org(org, new_default="default")
    if connection is not None:
        platform = import_connection(org_slug, connection)
    try:
        report = import_file(
            path if path != "-" else sys.stdin.buffer,
            org_slug=org_slug,
            skip_invalid=skip_invalid,
            platform=platform,
            batch_size=batch_size,
            progress=not quiet and sys.stderr.isatty(),
            connection_id=connection,
        )
    except QunyunError as exc:
        _fail(exc)
        return
    # The import report stays in English whatever the language: scripts read these lines.
    for line_no, reason in report.skipped:
        print(f"skipped line {line_no}: {reason}", file=sys.stderr)
    print(
        f"imported {report.stored} events ({report.duplicates} duplicates, {len(report.skipped)} skipped) "
        f"in {report.seconds:.2f}s, {report.rate:,.0f} events/s",
        file=sys.stderr,
    )


class StatsFormat(StrEnum):
    json = "json"
    csv = "csv"
    table = "table"


def _stats(
    period: str, org: str | None, date_from: date, date_to: date, group: str | None, fmt: StatsFormat, per_group: bool
) -> None:
    from qunyun.analytics.render import render_rows
    from qunyun.analytics.stats import stats_for_cli

    require_schema()
    org_slug = resolve_org(org)
    try:
        rows = stats_for_cli(
            period, org_slug=org_slug, date_from=date_from, date_to=date_to, group=group, per_group=per_group
        )
    except QunyunError as exc:
        _fail(exc)
        return
    render_rows(rows, fmt.value, sys.stdout)


DateFrom = Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD")]
DateTo = Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive)")]
GroupOpt = Annotated[str | None, typer.Option("--group", help="External group id; omit for all groups")]
FormatOpt = Annotated[StatsFormat, typer.Option("--format")]
PerGroupOpt = Annotated[bool, typer.Option("--per-group", help="Also one row per group (besides the all-groups row)")]


def _parse_day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail_line(Msg("cli.bad_date", name=name, value=value))
        raise typer.Exit(code=2) from None


def _stats_command(period: str, summary: str) -> None:
    """Register ``qunyun stats PERIOD``; daily and weekly take the same options."""

    def command(
        date_from: DateFrom,
        date_to: DateTo,
        group: GroupOpt = None,
        fmt: FormatOpt = StatsFormat.table,
        per_group: PerGroupOpt = False,
        org: OrgOption = None,
    ) -> None:
        _stats(period, org, _parse_day(date_from, "--from"), _parse_day(date_to, "--to"), group, fmt, per_group)

    command.__doc__ = summary
    stats_app.command(period)(command)


_stats_command("daily", "Per-day joins, left, actives, members and active_ratio.")
_stats_command("weekly", "Per-ISO-week metrics with conversion and GMV (whole ISO weeks touching the range).")


@stats_app.command("rebuild")
def stats_rebuild(
    org: OrgOption = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only compare with a recount and change nothing; exit 1 if they differ")
    ] = False,
) -> None:
    """Recount the daily rollups from the event log, replacing those kept while ingesting."""
    from sqlalchemy import select

    from qunyun.db.session import unit_of_work
    from qunyun.ingestion.rollups import rebuild_rollups
    from qunyun.models import Organisation

    require_schema()
    slug = resolve_org(org)
    with unit_of_work() as session:
        org_id = session.scalar(select(Organisation.id).where(Organisation.slug == slug))
        assert org_id is not None  # resolve_org has just seen it
        result = rebuild_rollups(session, org_id, write=not check)
    tables = ", ".join(f"{table} ({rows})" for table, rows in result.differing.items())
    if not result.differing:
        tell(Msg("live.rollups_agree", org=slug, days=result.days))
    elif check:
        tell(Msg("live.rollups_differ", org=slug, tables=tables))
        raise typer.Exit(code=1)
    else:
        tell(Msg("live.rollups_rebuilt", org=slug, days=result.days, tables=tables))


@org_app.command("create")
def org_create(
    slug: str,
    name: Annotated[str, typer.Option(help="Display name")] = "",
    time_zone: Annotated[str, typer.Option(help="IANA time zone for metric days")] = "Asia/Shanghai",
) -> None:
    """Create an organisation."""
    from qunyun.db.session import unit_of_work
    from qunyun.team.service import create_organisation

    require_schema()
    try:
        with unit_of_work() as session:
            create_organisation(session, name=name or slug, slug=slug, time_zone=time_zone)
    except QunyunError as exc:
        _fail(exc)
    tell(Msg("cli.org_created", org=slug))


@org_app.command("add-staff")
def org_add_staff(
    org: Annotated[str, typer.Argument(help="Organisation slug")],
    username: str,
    role: Annotated[str, typer.Option(help="lead, owner, admin, operator or analyst")] = "operator",
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)] = "",
) -> None:
    """Create a staff account in an organisation."""
    from sqlalchemy import select

    from qunyun.db.session import unit_of_work
    from qunyun.models import Organisation
    from qunyun.team.service import create_staff

    require_schema()
    org = resolve_org(org)  # an unknown slug: one line listing the organisations
    try:
        with unit_of_work() as session:
            org_id = session.scalar(select(Organisation.id).where(Organisation.slug == org))
            assert org_id is not None  # resolve_org has just seen it
            create_staff(session, org_id, username=username, password=password, role=role)
    except QunyunError as exc:
        _fail(exc)
    tell(Msg("cli.staff_created", username=username, role=Msg(f"role_{role}"), org=org))


@org_app.command("add-integration")
def org_add_integration(
    org: Annotated[str, typer.Argument(help="Organisation slug")],
    name: Annotated[str, typer.Argument(help="What feeds the events, e.g. wecom-sync")],
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=3650, help="Token lifetime in days")] = None,
) -> None:
    """Create an integration account and print its API token for POST /api/v1/events (shown once)."""
    from sqlalchemy import select

    from qunyun.auth.integrations import create_integration
    from qunyun.db.session import unit_of_work
    from qunyun.models import Organisation
    from qunyun.timeutil import utcnow

    require_schema()
    org = resolve_org(org)
    try:
        with unit_of_work() as session:
            organisation = session.scalar(select(Organisation).where(Organisation.slug == org))
            assert organisation is not None  # resolve_org has just seen it
            issued = create_integration(session, organisation, name, now=utcnow(), expires_in_days=expires_in_days)
            secret = issued.secret
    except QunyunError as exc:
        _fail(exc)
    tell(Msg("edge.integration_created", name=name, org=org))
    typer.echo(secret)


@app.command()
def setup(
    org: Annotated[str, typer.Option(help="Slug of the first organisation")] = "default",
    username: Annotated[str, typer.Option(help="The first lead's username")] = "lead",
) -> None:
    """On an empty database: create the first organisation and a lead, and print the login."""
    import secrets

    from sqlalchemy import select

    from qunyun.db.session import unit_of_work
    from qunyun.models import Staff
    from qunyun.team.service import create_staff, ensure_organisation

    require_schema()
    with unit_of_work() as session:
        if session.scalar(select(Staff.id).limit(1)) is not None:
            tell(Msg("cli.setup_done_already"))
            return
        org_id = ensure_organisation(session, org)
        password = secrets.token_urlsafe(12)
        create_staff(session, org_id, username=username, password=password, role="lead", display_name="总群主")
    tell(Msg("cli.login", username=username, password=password, role=Msg("role_lead"), org=org))


def _read_password_file(path: str | None) -> str | None:
    if path is None:
        return None
    from pathlib import Path

    password = Path(path).read_text(encoding="utf-8").strip()  # OSError: one line (not found, permission)
    if len(password) < 8:
        _fail_with(Msg("cli.password_too_short"))
    return password


@staff_app.command("reset-password")
def staff_reset_password(
    username: str,
    password_file: Annotated[
        str | None, typer.Option("--password-file", help="Read the new password from this file")
    ] = None,
) -> None:
    """Give a staff account a new password (random unless --password-file) and sign out its
    sessions; prints the new password."""
    import secrets

    from sqlalchemy import select, update

    from qunyun.audit.service import record
    from qunyun.auth.passwords import hash_password
    from qunyun.db.session import unit_of_work
    from qunyun.models import AuthToken, Organisation, Staff
    from qunyun.timeutil import utcnow

    password = _read_password_file(password_file) or secrets.token_urlsafe(12)
    require_schema()
    with unit_of_work() as session:
        staff = session.scalar(select(Staff).where(Staff.username == username))
        if staff is None:
            _fail_with(Msg("cli.no_staff", username=username))
            return
        staff.password_hash = hash_password(password)
        # A reset is a response to a lost or leaked password: existing sessions end with it.
        session.execute(
            update(AuthToken)
            .where(AuthToken.staff_id == staff.id, AuthToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        record(
            session,
            org_id=staff.org_id,
            staff_id=None,
            action="staff.reset_password",
            target_type="staff",
            target_id=staff.id,
            detail={"username": username, "via": "cli"},
        )
        role, org = staff.role, session.scalar(select(Organisation.slug).where(Organisation.id == staff.org_id))
    tell(Msg("cli.login", username=username, password=password, role=Msg(f"role_{role}"), org=org))


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Random seed of the simulated community")] = 4,
    days: Annotated[int, typer.Option(min=1, max=366, help="Simulated days, ending now")] = 28,
    members: Annotated[int | None, typer.Option(min=10, help="People to acquire (default 1500)")] = None,
    password_file: Annotated[
        str | None, typer.Option("--password-file", help="Give every demo account the password in this file")
    ] = None,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="Do nothing (exit 0) when the database has an organisation")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Load even when other organisations exist")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Load the demo community (seed 004's bicycle brand, 28 simulated days ending now) and
    print every account's login, one line each."""
    from qunyun.simulate.demo import ORG_SLUG, load_demo

    password = _read_password_file(password_file)
    _show_database()
    require_schema()
    slugs = organisation_slugs()
    if slugs and not force:
        if if_empty:
            tell(Msg("cli.demo_present") if ORG_SLUG in slugs else Msg("cli.orgs_present", slugs=", ".join(slugs)))
            return
        _fail_with(Msg("cli.demo_refused", slugs=", ".join(slugs)))
    try:
        result = load_demo(seed=seed, days=days, members=members, password=password, progress=not quiet)
    except QunyunError as exc:
        _fail(exc)
        return
    c = result.counts
    tell(
        Msg(
            "cli.demo_loaded",
            name=result.org_name,
            slug=result.org_slug,
            groups=c["groups"],
            members=f"{c['members']:,}",
            events=f"{c['events']:,}",
            seconds=f"{result.simulation.wall_seconds:.1f}",
        )
    )
    for username, account_password in result.passwords.items():
        role = Msg(f"role_{result.roles[username]}")
        tell(Msg("cli.login", username=username, password=account_password, role=role, org=result.org_slug))
    tell(Msg("cli.demo_reset_hint"))


@app.command()
def simulate(
    days: Annotated[int, typer.Option(min=1, max=366, help="Simulated days")] = 28,
    groups: Annotated[int, typer.Option(min=1, max=2000, help="Groups (regional plus a few core groups)")] = 50,
    members: Annotated[int, typer.Option(min=1, help="People to acquire through the channels")] = 20000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same events")] = 4,
    speed: Annotated[
        float | None,
        typer.Option(min=0.01, help="Simulated time runs this many times faster than real time (default: flat out)"),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="First simulated instant, ISO 8601 (default 2026-03-02T00:00+08:00)")
    ] = None,
    org: Annotated[
        str | None, typer.Option("--org", help="Slug of the organisation to create (default sim-SEED)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Simulate a community on a virtual clock into a new organisation, through the real
    ingestion pipeline; prints a summary with wall time and events/s."""
    from datetime import datetime

    from qunyun.simulate.report import print_summary, progress_bar
    from qunyun.simulate.runner import run_scenario
    from qunyun.simulate.scenario import simulate_scenario

    first = None
    if start is not None:
        try:
            first = datetime.fromisoformat(start)
        except ValueError:
            first = None
        if first is None or first.tzinfo is None:
            _fail_with(Msg("cli.bad_start", value=start))
    require_schema()
    slug = org or f"sim-{seed}"
    scenario = simulate_scenario(seed=seed, days=days, groups=groups, members=members, start=first, prefix=slug)
    with progress_bar(enabled=not quiet) as update:
        try:
            _, result = run_scenario(scenario, slug=slug, name=f"Simulation {seed}", speed=speed, progress=update)
        except QunyunError as exc:
            _fail(exc)
            return
    print_summary(result, slug)


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="HTTP server processes")] = 1,
    job_threads: Annotated[int, typer.Option("--job-threads", min=0, help="Job worker threads (0 to run none)")] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log a line per request (off: less CPU per request)")
    ] = True,
) -> None:
    """Serve the console and the REST API (with its documentation at /docs), and run job workers.

    With one server process (the default) the job threads run inside it; with several, they run
    in this parent process, which supervises the server processes and runs no requests itself.
    ``--no-access-log`` is for ingest-heavy servers: the line per request cost about 6 % of the
    server's CPU on a burst of single-message posts (docs/performance.md).
    """
    import uvicorn

    from qunyun.api.app import create_app
    from qunyun.config import get_settings

    _show_database()
    require_schema()
    shown = f"[{host}]" if ":" in host else host
    tell(Msg("cli.serving", url=f"http://{shown}:{port}/"))
    # Forwarded headers only from QUNYUN_TRUSTED_PROXIES (uvicorn's default trusts loopback).
    proxies = get_settings().trusted_proxies.strip()
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "info",
        "access_log": access_log,
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or None,
    }
    if workers == 1:
        uvicorn.run(create_app(in_process_workers=job_threads), **options)
        return
    from qunyun.worker.runner import InProcessWorker

    # Server processes are spawned afresh by uvicorn (not forked), so threads here are safe.
    jobs = InProcessWorker(job_threads) if job_threads > 0 else None
    if jobs is not None:
        jobs.start()
    # uvicorn kills a server process that does not answer its health check in time (5 s by
    # default) and starts another; a process importing the app on a busy machine can take longer
    # than that to answer its first ping, and would be killed and replaced for ever.
    options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_SECONDS
    try:
        uvicorn.run("qunyun.api.app:create_app", factory=True, workers=workers, **options)
    finally:
        if jobs is not None:
            jobs.stop()


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Worker threads in this process")] = 1,
    burst: Annotated[bool, typer.Option("--burst", help="Exit when no job is due")] = False,
    name: Annotated[str | None, typer.Option(help="Worker name in job records")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Jobs each thread claims at once")] = 32,
) -> None:
    """Run standalone job workers; any number of processes may share one PostgreSQL."""
    from qunyun.worker.runner import run_workers

    require_schema()
    run_workers(concurrency=concurrency, burst=burst, name=name, batch=batch)


def main() -> None:  # pragma: no cover
    app()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of every failure (also QUNYUN_DEBUG=1)")
    ] = False,
) -> None:
    """qunyun — community operations platform (社群运营).

    The default database is var/qunyun.db in the project (a source checkout) or in the working
    directory; QUNYUN_DATABASE_URL chooses another. Messages follow QUNYUN_DEFAULT_LANGUAGE (zh, en).
    """
    set_debug(debug)
    use_project_database()


if __name__ == "__main__":  # pragma: no cover
    main()
