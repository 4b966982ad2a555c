"""What the ``qunyun`` command needs besides its verbs: messages in the configured language
(QUNYUN_DEFAULT_LANGUAGE), one clear line instead of a traceback for the failures a user can
fix, the project's database wherever the command runs from, and the organisation to work on.

Tracebacks remain for real bugs, and for everything with ``--debug`` or QUNYUN_DEBUG=1.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

import typer
from typer._click import Context
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer carries its own click
from typer.core import TyperGroup

from qunyun.locale import Msg, pick_language

DEBUG_ENV = "QUNYUN_DEBUG"
# Exit codes: 2 for what the user typed (an option, a file, an organisation), 1 for the
# environment (database, disk, permissions, settings), 130 for Ctrl-C.
USAGE = 2
ENVIRONMENT = 1


class CliFailure(Exception):
    """An expected failure of a command: shown as one line, exit ``code``."""

    def __init__(self, msg: Msg, code: int = USAGE) -> None:
        super().__init__(str(msg))
        self.msg = msg
        self.code = code


def language() -> str:
    """The language of the CLI's human messages."""
    try:
        from qunyun.config import get_settings

        return get_settings().default_language
    except Exception:  # a bad setting is itself reported as one line; until then, read it raw
        return pick_language(os.environ.get("QUNYUN_DEFAULT_LANGUAGE", "").strip().lower())


def say(msg: Msg) -> str:
    return msg.render(language())


def tell(msg: Msg) -> None:
    """One line on standard error. Plain ``print``, not Rich: a login, a password or a URL is never
    wrapped or broken in a narrow terminal, and nothing is read as markup."""
    print(say(msg), file=sys.stderr, flush=True)


def fail_line(message: Msg | str) -> None:
    tell(Msg("cli.error", message=message))


_debug = False


def debug_enabled() -> bool:
    return _debug or os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def set_debug(on: bool) -> None:
    """--debug: every failure shows its traceback (set by the root command on each run)."""
    global _debug
    _debug = on


# --- the database -------------------------------------------------------------------------


def source_checkout() -> Path | None:
    """The project directory when qunyun runs from its source checkout (editable install)."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and (root / "src" / "qunyun" / "cli.py").is_file():
        return root
    return None


def use_project_database() -> None:
    """The default SQLite file is ``var/qunyun.db`` relative to the working directory; from a
    source checkout, make it the project's ``var/`` whatever the working directory is. An explicit
    QUNYUN_VAR_DIR or QUNYUN_DATABASE_URL is left alone."""
    if "QUNYUN_DATABASE_URL" in os.environ or "QUNYUN_VAR_DIR" in os.environ:
        return
    from qunyun.config import get_settings

    settings = get_settings()
    if settings.database_url or settings.var_dir.is_absolute():
        return
    root = source_checkout()
    if root is None:
        return
    os.environ["QUNYUN_VAR_DIR"] = str(root / settings.var_dir)
    _forget_settings()


def _forget_settings() -> None:
    from qunyun.config import get_settings
    from qunyun.db import session as db_session

    get_settings.cache_clear()
    db_session.get_engine.cache_clear()
    db_session.get_sessionmaker.cache_clear()


def database_label() -> str:
    """The configured database URL without its password; a SQLite file as an absolute path."""
    from sqlalchemy.engine import make_url

    from qunyun.config import get_settings

    url = get_settings().resolved_database_url
    try:
        parsed = make_url(url)
    except Exception:
        return "(invalid URL)"
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return f"sqlite:///{Path(parsed.database).resolve().as_posix()}"
    return parsed.render_as_string(hide_password=True)


def sqlite_file() -> Path | None:
    from sqlalchemy.engine import make_url

    from qunyun.config import get_settings

    parsed = make_url(get_settings().resolved_database_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database)
    return None


def schema_revisions() -> tuple[str | None, str, set[str]]:
    """(the database's revision, the code's head, every revision the code knows); a missing
    SQLite file is not created."""
    from alembic.script import ScriptDirectory

    from qunyun.db.migrate import alembic_config, current_revision
    from qunyun.db.session import get_engine

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head() or ""
    known = {rev.revision for rev in script.walk_revisions()}
    path = sqlite_file()
    if path is not None and not path.exists():
        return None, head, known
    return current_revision(get_engine()), head, known


def require_schema() -> None:
    """Fail with one line unless the database has the schema this code expects."""
    path = sqlite_file()
    if path is not None and not path.exists():
        raise CliFailure(Msg("cli.no_database", database=database_label()), ENVIRONMENT)
    current, head, known = schema_revisions()
    if current is None:
        raise CliFailure(Msg("cli.no_schema", database=database_label()), ENVIRONMENT)
    if current not in known:
        raise CliFailure(Msg("cli.newer_schema", current=current, head=head), ENVIRONMENT)
    if current != head:
        raise CliFailure(Msg("cli.old_schema", current=current, head=head), ENVIRONMENT)


# --- the organisation ---------------------------------------------------------------------


def organisation_slugs() -> list[str]:
    from sqlalchemy import select

    from qunyun.db.session import unit_of_work
    from qunyun.models import Organisation

    with unit_of_work(write=False) as session:
        return list(session.scalars(select(Organisation.slug).order_by(Organisation.slug)))


def _slug_list(slugs: list[str]) -> Msg | str:
    return ", ".join(slugs) if slugs else Msg("cli.none")


def resolve_org(given: str | None, *, new_default: str | None = None) -> str:
    """The organisation a command works on: ``given``, or the only one there is. ``new_default``
    names the organisation to create when there is none and the command creates one (an
    import); without it, an unknown ``given`` is an error that lists the slugs."""
    slugs = organisation_slugs()
    if given is not None:
        if given in slugs or new_default is not None:
            return given
        raise CliFailure(Msg("cli.unknown_org", org=given, slugs=_slug_list(slugs)))
    if len(slugs) == 1:
        return slugs[0]
    if not slugs:
        if new_default is not None:
            return new_default
        raise CliFailure(Msg("cli.no_org"))
    raise CliFailure(Msg("cli.which_org", slugs=_slug_list(slugs)))


def resolve_org_id(given: str | None) -> int:
    """The id of the organisation :func:`resolve_org` names."""
    from sqlalchemy import select

    from qunyun.db.session import unit_of_work
    from qunyun.models import Organisation

    slug = resolve_org(given)
    with unit_of_work(write=False) as session:
        org_id = session.scalar(select(Organisation.id).where(Organisation.slug == slug))
    assert org_id is not None  # resolve_org has just seen it
    return org_id


def lead_scope_of(org_id: int) -> Any:
    """The command line acts as the organisation's lead (audited without a staff member)."""
    from qunyun.auth.scope import Scope
    from qunyun.models import Role

    return Scope(staff_id=0, org_id=org_id, role=Role.LEAD)


# --- expected failures as one line ------------------------------------------------------


def _first_line(value: object) -> str:
    text = str(value).strip()
    return text.splitlines()[0].strip() if text else type(value).__name__


def explain(exc: BaseException) -> tuple[Msg | str, int] | None:
    """The line and exit code for an expected failure; None for a bug (shown as a traceback)."""
    from pydantic import ValidationError
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    from qunyun.errors import QunyunError

    if isinstance(exc, CliFailure):
        return exc.msg, exc.code
    if isinstance(exc, QunyunError):
        return (exc.msg if exc.msg is not None else exc.message), USAGE
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        first = exc.errors()[0]
        name = "QUNYUN_" + "_".join(str(part) for part in first["loc"]).upper() if first["loc"] else "QUNYUN_*"
        detail = str(first["msg"]).removeprefix("Value error, ")
        return Msg("cli.bad_setting", name=name, detail=detail), ENVIRONMENT
    if isinstance(exc, ArgumentError | NoSuchModuleError):
        return Msg("cli.bad_database_url", detail=_first_line(exc)), ENVIRONMENT
    if isinstance(exc, DBAPIError):
        return _explain_database(exc)
    if isinstance(exc, OSError):
        return _explain_os(exc)
    return None


def _explain_database(exc: Any) -> tuple[Msg, int] | None:
    orig = exc.orig
    text = str(orig).lower()
    state = getattr(orig, "sqlstate", None) or ""
    database = database_label()
    if "no such table" in text or state == "42P01":
        return Msg("cli.no_schema", database=database), ENVIRONMENT
    if "disk is full" in text or "no space left" in text or state in {"53100", "53000"}:
        return Msg("cli.disk_full", target=database), ENVIRONMENT
    if "readonly database" in text or "permission denied" in text or state == "42501":
        return Msg("cli.permission", target=database), ENVIRONMENT
    if "database is locked" in text:
        return Msg("cli.db_busy", database=database), ENVIRONMENT
    from sqlalchemy.exc import OperationalError

    if isinstance(exc, OperationalError) or exc.connection_invalidated or state.startswith(("08", "28", "3D")):
        return Msg("cli.db_unreachable", database=database, detail=_first_line(orig)), ENVIRONMENT
    return None


def _explain_os(exc: OSError) -> tuple[Msg, int]:
    target = exc.filename if exc.filename is not None else database_label()
    if exc.errno == errno.ENOSPC:
        return Msg("cli.disk_full", target=target), ENVIRONMENT
    if exc.errno in {errno.EACCES, errno.EPERM, errno.EROFS}:
        return Msg("cli.permission", target=target), ENVIRONMENT
    if exc.errno == errno.ENOENT and exc.filename is not None:
        return Msg("cli.file_not_found", path=exc.filename), USAGE
    return Msg("cli.os_error", detail=exc.strerror or _first_line(exc), target=target), ENVIRONMENT


class QunyunGroup(TyperGroup):
    """The root command group: expected failures anywhere below it print one line and exit
    non-zero; bugs (and everything with --debug) keep their traceback."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, NoArgsIsHelpError):
            raise
        except UsageError as exc:
            command = exc.ctx.command_path if exc.ctx is not None else "qunyun"
            fail_line(Msg("cli.bad_usage", detail=exc.format_message(), command=command))
            raise typer.Exit(USAGE) from None
        except KeyboardInterrupt:
            tell(Msg("cli.interrupted"))
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug_enabled():
                raise
            explained = explain(exc)
            if explained is None:
                raise
            message, code = explained
            fail_line(message)
            raise typer.Exit(code) from None
