"""Store locations: the forms `open_store` accepts, and PostgreSQL URLs made safe to print.

A password given in a URL goes to the driver and nowhere else: never into ``url``, an error
message or a log line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from .._errors import StoreError

__all__ = ("ACCEPTED", "PostgresTarget", "classify", "postgres_target", "redact")

ACCEPTED = (
    "a file path, sqlite:///absolute/path.db, sqlite:relative/path.db, "
    "postgresql://user@host:port/database or postgres://... (optionally ?schema=NAME)"
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def classify(location: str) -> tuple[Literal["sqlite", "postgres"], str]:
    """Which store ``location`` names: ``("sqlite", path)`` or ``("postgres", url)``.

    Raises:
        StoreError: an unknown scheme or a malformed ``sqlite:`` URL, with the forms accepted.
    """
    match = _SCHEME.match(location)
    if match is None:
        if not location:
            raise StoreError(f"an empty store location; accepted: {ACCEPTED}")
        return "sqlite", location
    scheme, rest = match.group(1).lower(), location[match.end() :]
    if scheme in ("postgresql", "postgres") and rest.startswith("//"):
        return "postgres", location
    if scheme == "sqlite":
        return "sqlite", _sqlite_path(rest, location)
    raise StoreError(f"cannot open a store at {redact(location)!r}: accepted are {ACCEPTED}")


def _sqlite_path(rest: str, location: str) -> str:
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if authority not in ("", "localhost") or not slash:
            raise StoreError(f"{location!r} names no local file: use sqlite:///absolute/path.db or sqlite:relative.db")
        rest = "/" + path
    if rest in ("", "/"):
        raise StoreError(f"{location!r} names no file; accepted: {ACCEPTED}")
    return rest


def redact(url: str) -> str:
    """``url`` without the password of its user part (the rest is kept, to say where it points)."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at:
        return url
    netloc = f"{userinfo.partition(':')[0]}@{hostport}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass(frozen=True, slots=True)
class PostgresTarget:
    """A PostgreSQL URL split into what the driver needs and what may be shown."""

    dsn: str
    """For asyncpg: with the password, without ``schema`` (asyncpg would send it as a server setting)."""
    url: str
    """Safe to print: no password."""
    where: str
    """``host:port/database``, for error messages."""
    schema: str | None
    secrets: tuple[str, ...]
    """The password as written and decoded: scrubbed from any message that quotes the driver."""

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def postgres_target(url: str, schema: str | None = None) -> PostgresTarget:
    """Split ``url``, taking ``?schema=NAME`` out of it (an explicit ``schema`` must agree with it).

    Raises:
        StoreError: a schema name that is not a plain identifier, or two different schemas.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    named = [v for k, v in query if k == "schema"]
    if named and schema is not None and named[-1] != schema:
        raise StoreError(f"two schemas given: {named[-1]!r} in the URL and {schema!r}")
    schema = schema if schema is not None else (named[-1] if named else None)
    if schema is not None and not _IDENTIFIER.match(schema):
        raise StoreError(f"schema {schema!r} is not a plain identifier (letters, digits, _; at most 63)")
    rest = [(k, v) for k, v in query if k != "schema"]
    passwords = [parts.password or "", *(v for k, v in rest if k == "password")]
    secrets = tuple({s for p in passwords if p for s in (p, unquote(p))})
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    safe = redact(dsn)
    if schema is not None:
        safe += ("&" if "?" in safe else "?") + f"schema={schema}"
    return PostgresTarget(dsn, safe, _where(parts.netloc, parts.path, dict(rest)), schema, secrets)


def _where(netloc: str, path: str, query: dict[str, str]) -> str:
    userinfo, _, hostport = netloc.rpartition("@")
    hostport = hostport or query.get("host", "") or "localhost"
    if ":" not in hostport.rpartition("]")[2] and "," not in hostport:
        hostport += f":{query.get('port', '5432')}"
    database = path.lstrip("/") or query.get("dbname") or unquote(userinfo.partition(":")[0]) or "postgres"
    return f"{hostport}/{database}"
