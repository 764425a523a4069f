"""Pins: an MCP tool is used only as a human approved it.

A model reads a tool's description and schema as instructions, and the server can change
them at any time (a "rug pull"). So each approval pins the sha256 of the canonical JSON of
the tool's description and input schema; a tool whose digest no longer matches its pin is
disabled until it is approved again.

The pin file keeps the approved text next to each digest, so a change shows up as a diff in
review and the runtime can say which part changed. Every write replaces the file atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from .._errors import ConfigError

__all__ = ("DEFAULT_PINS_PATH", "MCPPins", "Pin", "PinStatus")

DEFAULT_PINS_PATH = Path(".cadenza") / "mcp-pins.json"
"""Where pins live when no path is given, relative to the working directory."""

PinStatus = Literal["approved", "unapproved", "changed"]
"""``approved``: the digest matches its pin; ``unapproved``: never pinned; ``changed``: pinned, but differently."""

_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Pin:
    """One approval of one tool of one server."""

    digest: str
    """sha256 (hex) of the canonical JSON of the approved description and input schema."""
    approved_at: str
    """When it was approved (ISO 8601, UTC)."""
    description: str | None = None
    """The approved description, when the approver passed it (for review and for saying what changed)."""
    input_schema: dict[str, Any] | None = None
    """The approved input schema, likewise."""


class MCPPins:
    """The approved digests of MCP tools, per server name and tool name, kept in a JSON file.

    Every read goes to the file (it is small), so approvals made by another process, or a pin
    edited by hand, count at once; each approval re-reads the file before it writes.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else Path.cwd() / DEFAULT_PINS_PATH

    def __repr__(self) -> str:
        return f"MCPPins({str(self.path)!r})"

    @staticmethod
    def digest_of(description: str | None, input_schema: Mapping[str, Any]) -> str:
        """sha256 (hex) of the canonical JSON (sorted keys, no spaces) of ``description`` and ``input_schema``."""
        canonical = json.dumps({"description": description, "inputSchema": input_schema}, sort_keys=True,
                               separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def pin(self, server: str, tool: str) -> Pin | None:
        """The approval of ``tool`` on ``server``, or None if it was never approved."""
        return self._load().get(server, {}).get(tool)

    def status(self, server: str, tool: str, digest: str) -> PinStatus:
        """Whether ``digest`` is what was approved for ``tool`` on ``server``."""
        pinned = self.pin(server, tool)
        if pinned is None:
            return "unapproved"
        return "approved" if pinned.digest == digest else "changed"

    def approve(
        self, server: str, tool: str, digest: str, *, description: str | None = None,
        input_schema: Mapping[str, Any] | None = None,
    ) -> Pin:
        """Pin ``digest`` as the approved form of ``tool`` on ``server`` and write the file.

        Pass the ``description`` and ``input_schema`` the digest was computed from to keep the
        approved text in the file; they must hash to ``digest``.
        """
        if input_schema is not None and self.digest_of(description, input_schema) != digest:
            raise ConfigError(f"MCP pin for tool {tool!r} of server {server!r}: the description and input schema "
                              f"given do not hash to digest {digest!r}")
        pinned = Pin(digest, datetime.now(UTC).isoformat(timespec="seconds"),
                     description if input_schema is not None else None,
                     dict(input_schema) if input_schema is not None else None)
        pins = self._load()
        pins.setdefault(server, {})[tool] = pinned
        self._write(pins)
        return pinned

    def _load(self) -> dict[str, dict[str, Pin]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"MCP pin file {self.path}: cannot be read: {exc}") from exc
        return self._parse(text)

    def _parse(self, text: str) -> dict[str, dict[str, Pin]]:
        def bad(why: str) -> ConfigError:
            return ConfigError(f"MCP pin file {self.path}: {why}; fix or delete it (its tools are then unapproved)")

        try:
            data = json.loads(text)
        except ValueError as exc:
            raise bad(f"not JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != _FORMAT or not isinstance(data.get("servers"), dict):
            raise bad(f'expected {{"version": {_FORMAT}, "servers": {{...}}}}')
        pins: dict[str, dict[str, Pin]] = {}
        for server, tools in data["servers"].items():
            if not isinstance(tools, dict):
                raise bad(f"servers.{server}: expected an object of tools")
            for tool, entry in tools.items():
                if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                        and isinstance(entry.get("approved_at"), str)):
                    raise bad(f"servers.{server}.{tool}: expected an object with 'sha256' and 'approved_at' strings")
                schema = entry.get("inputSchema")
                description = entry.get("description")
                pins.setdefault(server, {})[tool] = Pin(
                    entry["sha256"], entry["approved_at"], description if isinstance(description, str) else None,
                    schema if isinstance(schema, dict) else None)
        return pins

    def _write(self, pins: dict[str, dict[str, Pin]]) -> None:
        servers: dict[str, dict[str, dict[str, Any]]] = {}
        for server, tools in pins.items():
            for tool, pinned in tools.items():
                entry: dict[str, Any] = {"sha256": pinned.digest, "approved_at": pinned.approved_at}
                if pinned.input_schema is not None:
                    entry["description"] = pinned.description
                    entry["inputSchema"] = pinned.input_schema
                servers.setdefault(server, {})[tool] = entry
        text = json.dumps({"version": _FORMAT, "servers": servers}, indent=2, sort_keys=True, ensure_ascii=False)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(text + "\n")
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, self.path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise ConfigError(f"MCP pin file {self.path}: cannot be written: {exc}") from exc
