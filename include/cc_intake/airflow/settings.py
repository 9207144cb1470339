"""`make settings`: load ``airflow_settings.yaml`` (Astro CLI schema) into a plain Airflow.

The Astro CLI loads that file into its own containers; a plain Airflow's
``airflow connections import`` expects another layout. This module reads the Astro schema::

    airflow:
      connections: [{conn_id, conn_type, conn_host, conn_schema, conn_login, conn_password,
                     conn_port, conn_extra: {...}}]
      pools: [{pool_name, pool_slot, pool_description}]
      variables: [{variable_name, variable_value}]

and creates or updates each object in the metadata DB of the Airflow at ``$AIRFLOW_HOME``.
Relative file paths in extras (``key_file``, ``known_hosts``) are resolved against the project
root, since Airflow's hooks open them from wherever the worker runs.

    python -m include.cc_intake.airflow.settings airflow_settings.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.cc_intake.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# Extras that name a local file; only these are resolved, so tokens and URLs stay as written.
PATH_EXTRAS = frozenset({"key_file", "known_hosts"})


@dataclass(frozen=True)
class ConnectionSpec:
    """One Airflow connection as the metadata DB stores it."""

    conn_id: str
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A one-line summary without secrets (extras are listed by key only)."""
        where = self.host or "-"
        if self.port is not None:
            where += f":{self.port}"
        parts = [f"{self.conn_type} {where}"]
        if self.login:
            parts.append(f"login {self.login}")
        if self.password:
            parts.append("password set")
        if self.extra:
            parts.append("extras " + ", ".join(sorted(self.extra)))
        return ", ".join(parts)


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str = ""


@dataclass(frozen=True)
class VariableSpec:
    key: str
    value: Any
    description: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything an ``airflow_settings.yaml`` asks for, validated."""

    connections: tuple[ConnectionSpec, ...] = ()
    pools: tuple[PoolSpec, ...] = ()
    variables: tuple[VariableSpec, ...] = ()


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: object) -> str | None:
    return None if _blank(value) else str(value)


def _entries(section: object, name: str, source: str) -> list[Mapping[str, Any]]:
    if section is None:
        return []
    if not isinstance(section, list):
        raise ConfigError(f"{source}: airflow.{name} must be a list, got {type(section).__name__}")
    out = []
    for index, entry in enumerate(section):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: airflow.{name}[{index}] must be a mapping")
        # The Astro template ships entries with every value empty (but an example extra).
        if all(_blank(v) for k, v in entry.items() if k != "conn_extra"):
            continue
        out.append(entry)
    return out


def _required(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if _blank(value):
        raise ConfigError(f"{where}: `{key}` is required")
    return str(value).strip()


def resolve_extra_paths(extra: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """``extra`` with relative paths of :data:`PATH_EXTRAS` made absolute under ``root``."""
    out = dict(extra)
    for key in PATH_EXTRAS & out.keys():
        value = out[key]
        if isinstance(value, str) and value and not value.startswith("~"):
            path = Path(value)
            if not path.is_absolute():
                out[key] = str((root / path).resolve())
    return out


def _port(raw: Any, where: str) -> int | None:
    if _blank(raw):
        return None
    try:
        port = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: conn_port {raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{where}: conn_port {port} is not between 1 and 65535")
    return port


def _connection(entry: Mapping[str, Any], where: str, root: Path) -> ConnectionSpec:
    conn_id = _required(entry, "conn_id", where)
    where = f"{where} ({conn_id})"
    raw_extra = entry.get("conn_extra")
    if _blank(raw_extra):
        extra: dict[str, Any] = {}
    elif isinstance(raw_extra, Mapping):
        extra = dict(raw_extra)
    elif isinstance(raw_extra, str):  # the Astro CLI also accepts a JSON string
        try:
            extra = json.loads(raw_extra)
        except ValueError as exc:
            raise ConfigError(f"{where}: conn_extra is not valid JSON ({exc})") from None
        if not isinstance(extra, dict):
            raise ConfigError(f"{where}: conn_extra must be a mapping")
    else:
        raise ConfigError(f"{where}: conn_extra must be a mapping or a JSON object string")
    return ConnectionSpec(
        conn_id=conn_id,
        conn_type=_required(entry, "conn_type", where),
        host=_text(entry.get("conn_host")),
        schema=_text(entry.get("conn_schema")),
        login=_text(entry.get("conn_login")),
        password=_text(entry.get("conn_password")),
        port=_port(entry.get("conn_port"), where),
        extra=resolve_extra_paths(extra, root),
    )


def parse_settings(doc: object, *, root: Path = PROJECT_ROOT, source: str = "settings") -> Settings:
    """Validate an Astro ``airflow_settings.yaml`` document into :class:`Settings` (no I/O)."""
    if doc is None:
        return Settings()
    body = doc.get("airflow") if isinstance(doc, Mapping) else None
    if not isinstance(doc, Mapping) or not isinstance(body, Mapping | None):
        raise ConfigError(f"{source}: expected a mapping with a top-level `airflow:` key")
    body = body or {}
    connections = []
    seen: set[str] = set()
    for index, entry in enumerate(_entries(body.get("connections"), "connections", source)):
        spec = _connection(entry, f"{source}: airflow.connections[{index}]", root)
        if spec.conn_id in seen:
            raise ConfigError(f"{source}: connection {spec.conn_id!r} is defined twice")
        seen.add(spec.conn_id)
        connections.append(spec)
    pools = []
    for index, entry in enumerate(_entries(body.get("pools"), "pools", source)):
        where = f"{source}: airflow.pools[{index}]"
        slots = entry.get("pool_slot")
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < -1:
            raise ConfigError(f"{where}: pool_slot must be an integer >= -1, got {slots!r}")
        pools.append(
            PoolSpec(
                name=_required(entry, "pool_name", where),
                slots=slots,
                description=_text(entry.get("pool_description")) or "",
            )
        )
    variables = []
    for index, entry in enumerate(_entries(body.get("variables"), "variables", source)):
        where = f"{source}: airflow.variables[{index}]"
        value = entry.get("variable_value")
        if value is None:
            raise ConfigError(f"{where}: `variable_value` is required")
        variables.append(
            VariableSpec(
                key=_required(entry, "variable_name", where),
                value=value,
                description=_text(entry.get("variable_description")),
            )
        )
    return Settings(tuple(connections), tuple(pools), tuple(variables))


def load_settings(path: Path, *, root: Path = PROJECT_ROOT) -> Settings:
    """Read and validate an ``airflow_settings.yaml`` file."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the settings file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    return parse_settings(doc, root=root, source=str(path))


def _same_connection(conn: Any, spec: ConnectionSpec) -> bool:
    return (
        conn.conn_type == spec.conn_type
        and conn.host == spec.host
        and conn.schema == spec.schema
        and conn.login == spec.login
        and conn.password == spec.password
        and conn.port == spec.port
        and (conn.extra_dejson or {}) == spec.extra
    )


def _apply_connection(spec: ConnectionSpec, session: Session) -> str:
    from airflow.models.connection import Connection
    from sqlalchemy import select

    conn = session.scalar(select(Connection).where(Connection.conn_id == spec.conn_id))
    if conn is not None and _same_connection(conn, spec):
        return "unchanged"
    action = "updated" if conn is not None else "created"
    if conn is None:
        conn = Connection(conn_id=spec.conn_id)
        session.add(conn)
    conn.conn_type = spec.conn_type
    conn.host = spec.host
    conn.schema = spec.schema
    conn.login = spec.login
    conn.password = spec.password  # encrypted with the Fernet key by the model's setter
    conn.port = spec.port
    conn.extra = json.dumps(spec.extra) if spec.extra else None
    return action


def apply_settings(settings: Settings, *, environ: Mapping[str, str] | None = None) -> list[str]:
    """Create or update every object in the metadata DB; one printable line per object."""
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    environ = os.environ if environ is None else environ
    lines = []
    with create_session() as session:
        for spec in settings.connections:
            action = _apply_connection(spec, session)
            line = f"connection {spec.conn_id}: {action} ({spec.describe()})"
            missing = [
                key
                for key in sorted(PATH_EXTRAS & spec.extra.keys())
                if isinstance(spec.extra[key], str) and not Path(spec.extra[key]).exists()
            ]
            if missing:
                line += f"; not there yet: {', '.join(spec.extra[k] for k in missing)}"
            shadow = f"AIRFLOW_CONN_{spec.conn_id.upper()}"
            if shadow in environ:
                line += f"; note: {shadow} is set in this environment and wins over the DB"
            lines.append(line)
        session.flush()
        for pool in settings.pools:
            Pool.create_or_update_pool(
                pool.name, pool.slots, pool.description, include_deferred=False, session=session
            )
            lines.append(f"pool {pool.name}: set ({pool.slots} slots)")
    for var in settings.variables:
        as_json = not isinstance(var.value, str)
        Variable.set(var.key, var.value, description=var.description, serialize_json=as_json)
        lines.append(f"variable {var.key}: set")
    lines += _link_pool_lines(settings, environ)
    return lines


def _link_pool_lines(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """The link pool's slots as a Variable (tasks cannot read a pool), and how to turn it on."""
    from airflow.models.variable import Variable

    from include.cc_intake.airflow.link_budget import DEFAULT_POOL_NAME, LINK_POOL, LINK_SLOTS

    wanted = environ.get(LINK_POOL, "").strip() or DEFAULT_POOL_NAME
    pool = next((p for p in settings.pools if p.name == wanted), None)
    if pool is None:
        return []
    key = LINK_SLOTS.lower()
    if any(v.key == key for v in settings.variables):
        return []  # the file sets it explicitly
    slots = max(pool.slots, 1)  # -1 (unlimited): no split
    Variable.set(key, str(slots), description=f"slots of the pool {pool.name} (cc-intake)")
    lines = [f"variable {key}: set ({slots}, the slots of the link pool {pool.name})"]
    if environ.get(LINK_POOL, "").strip() != pool.name:
        lines.append(
            f"note: the copy steps use the pool {pool.name} only once {LINK_POOL}={pool.name} "
            "is in the environment of the scheduler, the dag-processor and the workers"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Load an airflow_settings.yaml (Astro CLI schema) into the Airflow at "
        "$AIRFLOW_HOME."
    )
    parser.add_argument("path", nargs="?", default="airflow_settings.yaml", type=Path)
    parser.add_argument(
        "--root",
        type=Path,
        default=PROJECT_ROOT,
        help="folder that relative file paths in extras are resolved against (project root)",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.path, root=args.root.resolve())
    except ConfigError as exc:
        print(f"[settings] {exc}", file=sys.stderr)
        return 2
    from sqlalchemy.exc import OperationalError, ProgrammingError

    home = os.environ.get("AIRFLOW_HOME", "~/airflow")
    print(f"[settings] loading {args.path} into the Airflow at {home}")
    try:
        lines = apply_settings(settings)
    except (OperationalError, ProgrammingError) as exc:
        print(
            f"[settings] the metadata DB of {home} is not ready ({type(exc).__name__}): "
            "run `airflow db migrate` first",
            file=sys.stderr,
        )
        return 1
    for line in lines or ["nothing to load"]:
        print(f"[settings] {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
