"""MCP servers as tool sources: each tool a server offers becomes a cadenza `Tool` an `Agent` uses unchanged.

A server's tools are code and text someone else controls, so by default none is usable:

- each tool is pinned (`MCPPins`) to the description and input schema a human approved, and is
  disabled, with the reason, when either changes;
- a tool without configured scopes needs ``mcp:{server}``, a scope no agent holds unless granted;
- arguments are checked against the tool's JSON schema before anything is sent;
- every failure (an error result, a timeout, a dead transport) is a `ToolError` naming server and tool,
  which the agent hands back to the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

from .._errors import ConfigError, ToolArgumentsError, ToolError
from .._version import __version__
from ..models.base import ToolSpec
from ._mcp_pins import MCPPins
from ._mcp_stderr import ServerStderr, launch
from ._tools import Tool, ToolContext

try:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError
    from jsonschema.protocols import Validator
    from jsonschema.validators import validator_for
    from mcp import Client, MCPError, StdioServerParameters, stdio_client
    from mcp import types as mt
    from referencing import Registry
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError("MCP servers need the mcp SDK: pip install 'cadenza[mcp]'") from exc

__all__ = ("DisabledTool", "MCPServer", "MCPTool", "mcp_tools")

logger = logging.getLogger("cadenza.mcp")

_SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What both OpenAI and Anthropic accept as a tool name."""
_MAX_PAGES = 100
_EXIT_WAIT = 2.0
"""Seconds to wait, once a session failed, for the server's stderr to end and say how it exited."""


@dataclass(frozen=True, slots=True)
class DisabledTool:
    """A tool a server offers that is not usable, and why."""

    server: str
    name: str
    """The server's name for the tool."""
    status: Literal["unapproved", "changed", "invalid"]
    reason: str
    digest: str
    """Of the tool as the server offers it now: what an approval would pin."""
    description: str = ""
    """What the server says the tool does, now."""

    def __str__(self) -> str:
        return f"MCP server {self.server!r}, tool {self.name!r}: {self.reason}"


class MCPTool(Tool):
    """One tool of an open `MCPServer`; calls go through the server's session.

    It counts as ``pure`` (a resumed run may call it again): the server's annotations are hints from
    the server, not promises. Set ``side_effect`` on a tool that must not be repeated.
    """

    __slots__ = ("_server", "_validator", "digest", "remote_name", "server_name")

    grants_own_scopes: ClassVar[bool] = False
    """A server describes this tool: an agent holds its scopes only when granted them explicitly."""

    @property
    def reference(self) -> str | None:
        """None: the tool lives in its server's session, not in an importable function."""
        return None

    def __init__(self, server: MCPServer, definition: mt.Tool, validator: Validator, *, name: str,
                 scopes: frozenset[str], digest: str) -> None:
        # Tool.__init__ derives everything from a Python function; an MCP tool brings its own schema.
        self._server = server
        self._validator = validator
        self.server_name = server.name
        self.remote_name = definition.name
        """The server's name for the tool (``name`` may be namespaced or made model-safe)."""
        self.digest = digest
        """What was approved: see `MCPPins.digest_of`."""
        self.name = name
        self.description = definition.description or ""
        self.scopes = scopes
        self.timeout = server.timeout
        self.side_effect = "pure"
        self.requires_approval = False
        self.ends_turn = False
        self._context_param = None
        self.spec = ToolSpec(name=name, description=self.description, parameters=definition.input_schema)

    def __repr__(self) -> str:
        return f"MCPTool({self.name!r}, server={self.server_name!r}, scopes={sorted(self.scopes)})"

    def renamed(self, name: str) -> MCPTool:
        """The same tool under another name (for the model; calls still use `remote_name`)."""
        definition = mt.Tool(name=self.remote_name, description=self.description, input_schema=self.spec.parameters)
        return MCPTool(self._server, definition, self._validator, name=name, scopes=self.scopes, digest=self.digest)

    def validate_arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check ``arguments`` against the server's input schema; raise `ToolArgumentsError` saying what is wrong."""
        try:
            errors = sorted(self._validator.iter_errors(arguments), key=lambda e: e.json_path)
        except Exception as exc:  # a $ref that does not resolve within the schema, say
            raise ToolError(f"tool {self.name!r} of MCP server {self.server_name!r}: its input schema cannot be "
                            f"checked: {_describe(exc)}") from None
        if errors:
            shown = "; ".join(f"{e.json_path.removeprefix('$').removeprefix('.') or '(arguments)'}: "
                              f"{_clip(e.message)}" for e in errors[:20])
            more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
            raise ToolArgumentsError(f"invalid arguments for tool {self.name!r} of MCP server {self.server_name!r} "
                                     f"(not sent): {shown}{more}")
        return dict(arguments)

    async def run(self, arguments: dict[str, Any], *, context: ToolContext | None = None) -> Any:
        """Validate, call the tool on the server; structured content if it gave some, else its text."""
        return await self._server._call(self, self.validate_arguments(arguments))


class MCPServer:
    """An MCP server the agent loop can call tools on: ``async with server: tools = await server.tools()``.

    The session lives in a task of its own, so the server may be opened and closed in different
    tasks (a fixture, a workflow runner) and tools may be called from any task meanwhile.
    """

    def __init__(
        self,
        name: str,
        *,
        command: Sequence[str] | None = None,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        scopes: Mapping[str, Iterable[str]] | None = None,
        pins: MCPPins | None = None,
        trust_on_first_use: bool = False,
        timeout: float = 30.0,
    ) -> None:
        """Describe a server; nothing starts until ``async with``.

        Args:
            name: the server's name in scopes (``mcp:{name}``), pins and namespaced tool names.
            command: start the server as this process and talk over its stdin/stdout.
            url: talk to a running server over streamable HTTP (``http://host:port/mcp``).
            env: variables for the process. It does not inherit ours: only HOME, PATH, SHELL, TERM,
                USER and LOGNAME are passed on, so secrets stay out unless given here.
            scopes: tool name -> the scopes it needs; ``"*"`` adds scopes to every tool. A tool named
                by neither needs ``mcp:{name}``.
            pins: the approvals to check tools against (``.cadenza/mcp-pins.json`` when None).
            trust_on_first_use: approve a tool never seen before; a tool that changed is still disabled.
            timeout: seconds for starting the session and for each call.
        """
        if not _SERVER_NAME.fullmatch(name) or "__" in name:
            raise ConfigError(f"MCP server name {name!r}: use letters, digits, '_' or '-' (at most 32, starting "
                              "with a letter or digit, no '__', which separates server from tool in names)")
        if (command is None) == (url is None):
            raise ConfigError(f"MCP server {name!r}: give exactly one of command (stdio) or url (streamable HTTP)")
        if command is not None and (isinstance(command, str) or not command
                                    or not all(isinstance(part, str) for part in command)):
            raise ConfigError(f"MCP server {name!r}: command must be a non-empty list of strings, "
                              f"like ['node', 'server.js'], got {command!r}")
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigError(f"MCP server {name!r}: url must start with http:// or https://, got {url!r}")
        if env is not None and command is None:
            raise ConfigError(f"MCP server {name!r}: env applies to a started process (command), not to a url")
        if not timeout > 0:
            raise ConfigError(f"MCP server {name!r}: timeout must be positive, got {timeout!r}")
        self.name = name
        self.command = tuple(command) if command is not None else None
        self.url = url
        self.env = dict(env) if env is not None else None
        self.scopes = {tool: _scope_set(name, tool, value) for tool, value in (scopes or {}).items()}
        self.pins = pins if pins is not None else MCPPins()
        self.trust_on_first_use = trust_on_first_use
        self.timeout = timeout
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._warned: set[tuple[str, str, str]] = set()  # (tool, status, digest) already logged as disabled
        self._stderr: ServerStderr | None = None
        """Where a started server's stderr goes (the log), and what it said last."""

    def __repr__(self) -> str:
        where = f"command={list(self.command)!r}" if self.command else f"url={self.url!r}"
        return f"MCPServer({self.name!r}, {where})"

    @property
    def is_open(self) -> bool:
        """Whether its session is open (between ``__aenter__`` and ``__aexit__``) and still alive."""
        return self._task is not None and not self._task.done()

    async def __aenter__(self) -> Self:
        if self._task is not None:
            raise ConfigError(f"MCP server {self.name!r} is already open")
        ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        task = asyncio.create_task(self._hold(ready), name=f"cadenza-mcp-{self.name}")
        try:
            async with asyncio.timeout(self.timeout):
                self._client = await asyncio.shield(ready)
        except BaseException as exc:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if isinstance(exc, TimeoutError):
                raise ToolError(f"MCP server {self.name!r} did not start within {self.timeout}s") from None
            raise
        self._task = task
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        task, self._task, self._client = self._task, None, None
        if task is None:
            return
        self._stop.set()
        try:
            await task
        except Exception as failure:  # the session is gone either way; a failed goodbye is not the caller's error
            logger.warning("MCP server %r did not close cleanly: %s", self.name, _describe(failure))

    async def _hold(self, ready: asyncio.Future[Client]) -> None:
        """Own the session: enter and exit the SDK client in one task, as its task groups require."""
        stderr = self._stderr = ServerStderr(self.name) if self.command is not None else None
        try:
            async with self._new_client(stderr) as client:
                if stderr is not None:
                    stderr.started()
                ready.set_result(client)
                await self._stop.wait()
                if stderr is not None:
                    stderr.closing()
        except Exception as exc:
            if ready.done():
                raise
            where = f"command {list(self.command)!r}" if self.command else f"url {self.url!r}"
            ready.set_exception(ToolError(f"MCP server {self.name!r} ({where}) could not start: "
                                          f"{_describe(exc)}{await self._how_it_ended(stderr)}"))
        finally:
            if stderr is not None:
                stderr.started()  # whatever happened, the pipe ends with the process

    async def _how_it_ended(self, stderr: ServerStderr | None) -> str:
        """``; it exited with status N; its last stderr line: ...`` for a server that is gone ('' if not known)."""
        if stderr is None:
            return ""
        stderr.closing()  # the error that is being raised says it: no warning as well
        stderr.started()
        if not await asyncio.to_thread(stderr.exited.wait, _EXIT_WAIT):
            return ""
        return f"; it {stderr.describe_exit()}"

    def _new_client(self, stderr: ServerStderr | None) -> Client:
        info = mt.Implementation(name="cadenza", version=__version__)
        common: dict[str, Any] = {"cache": None, "read_timeout_seconds": self.timeout, "client_info": info}
        if self.command is None or stderr is None:
            assert self.url is not None
            return Client(self.url, **common)
        program, args = launch(self.command)
        params = StdioServerParameters(command=program, args=args, env=self.env)
        return Client(stdio_client(params, errlog=stderr.errlog), **common)

    def _open_client(self, what: str) -> Client:
        if self._client is None:
            raise ToolError(f"MCP server {self.name!r} is not open ({what}): use `async with server:` around its use")
        if self._task is not None and self._task.done():
            raise ToolError(f"MCP server {self.name!r}: its session has ended ({what})")
        return self._client

    async def tools(self) -> list[MCPTool]:
        """The server's tools that are usable now: approved, and unchanged since (see `disabled`).

        Each disabled tool is logged once (a warning), not once per task that lists the tools.
        """
        usable, disabled = await self.review()
        for off in disabled:
            if (off.name, off.status, off.digest) not in self._warned:
                self._warned.add((off.name, off.status, off.digest))
                logger.warning("%s", off)
        return usable

    async def disabled(self) -> list[DisabledTool]:
        """The server's tools that are not usable now, and why."""
        return (await self.review())[1]

    async def approve(self, tool: str) -> MCPTool:
        """Approve ``tool`` (the server's name for it) as the server offers it now, and return it."""
        listed = await self._list()
        found = next((t for t in listed if t.name == tool), None)
        if found is None:
            raise ConfigError(f"MCP server {self.name!r} offers no tool {tool!r}; it offers: "
                              f"{', '.join(t.name for t in listed) or '(none)'}")
        built = self._build(found, _model_names(listed)[tool])
        if isinstance(built, DisabledTool):
            raise ConfigError(str(built))
        self._pin(found, built.digest)
        return built

    async def approve_all(self) -> list[MCPTool]:
        """Approve every tool as the server offers it now (changed ones too); return the usable tools."""
        listed = await self._list()
        names = _model_names(listed)
        for found in listed:
            built = self._build(found, names[found.name])
            if isinstance(built, MCPTool):
                self._pin(found, built.digest)
        return await self.tools()

    async def review(self) -> tuple[list[MCPTool], list[DisabledTool]]:
        """Every tool the server offers now, once: the usable ones, and the disabled ones with why."""
        listed = await self._list()
        names = _model_names(listed)
        usable: list[MCPTool] = []
        disabled: list[DisabledTool] = []
        for found in listed:
            built = self._build(found, names[found.name])
            if isinstance(built, DisabledTool):
                disabled.append(built)
                continue
            status = self.pins.status(self.name, found.name, built.digest)
            if status == "unapproved" and self.trust_on_first_use:
                self._pin(found, built.digest)
                status = "approved"
            if status == "approved":
                usable.append(built)
            else:
                disabled.append(DisabledTool(self.name, found.name, status, self._why(found, built.digest), built.digest,
                                             found.description or ""))
        return usable, disabled

    def _build(self, found: mt.Tool, name: str | None) -> MCPTool | DisabledTool:
        digest = MCPPins.digest_of(found.description, found.input_schema)
        if name is None:
            return DisabledTool(self.name, found.name, "invalid", "its name, made fit for models, is the same as "
                                "another of the server's tools", digest, found.description or "")
        try:
            cls = validator_for(found.input_schema, default=Draft202012Validator)
            cls.check_schema(found.input_schema)
            # An empty registry: a $ref resolves within the schema, never by fetching what a server names.
            validator = cls(found.input_schema, registry=Registry())
        except (SchemaError, TypeError) as exc:
            why = exc.message if isinstance(exc, SchemaError) else str(exc)
            return DisabledTool(self.name, found.name, "invalid",
                                f"its input schema is not a valid JSON schema: {_clip(why)}", digest,
                                found.description or "")
        configured = [self.scopes[key] for key in ("*", found.name) if key in self.scopes]
        scopes = frozenset().union(*configured) if configured else frozenset({f"mcp:{self.name}"})
        return MCPTool(self, found, validator, name=name, scopes=scopes, digest=digest)

    def _pin(self, found: mt.Tool, digest: str) -> None:
        self.pins.approve(self.name, found.name, digest, description=found.description, input_schema=found.input_schema)

    def _why(self, found: mt.Tool, digest: str) -> str:
        pinned = self.pins.pin(self.name, found.name)
        if pinned is None:
            return f"not approved yet (digest {digest[:12]})"
        parts = []
        if pinned.input_schema is not None:
            if pinned.description != found.description:
                parts.append("description")
            if pinned.input_schema != found.input_schema:
                parts.append("input schema")
        what = " and ".join(parts) if parts else "description or input schema (its digest)"
        return f"{what} changed since approval on {pinned.approved_at}"

    async def _list(self) -> list[mt.Tool]:
        client = self._open_client("listing tools")
        listed: list[mt.Tool] = []
        cursor: str | None = None
        try:
            for _ in range(_MAX_PAGES):
                page = await client.list_tools(cursor=cursor)
                listed.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    return listed
        except Exception as exc:
            raise ToolError(f"MCP server {self.name!r}: listing its tools failed: {_describe(exc)}") from exc
        raise ToolError(f"MCP server {self.name!r}: its tool list did not end after {_MAX_PAGES} pages")

    async def _call(self, tool: MCPTool, arguments: dict[str, Any]) -> Any:
        where = f"MCP server {self.name!r}, tool {tool.remote_name!r}"
        client = self._open_client(f"calling {tool.remote_name!r}")
        try:
            async with asyncio.timeout(tool.timeout):
                result = await client.call_tool(tool.remote_name, arguments, read_timeout_seconds=tool.timeout)
        except TimeoutError:
            raise ToolError(f"{where}: timed out after {tool.timeout}s") from None
        except MCPError as exc:
            if exc.code == mt.REQUEST_TIMEOUT:
                raise ToolError(f"{where}: timed out after {tool.timeout or self.timeout}s") from None
            if exc.code == mt.CONNECTION_CLOSED:
                gone = await self._how_it_ended(self._stderr)
                raise ToolError(f"{where}: the connection to the server is closed{gone}") from None
            raise ToolError(f"{where}: the server refused the call: {exc.message} (MCP error {exc.code})") from None
        except Exception as exc:
            raise ToolError(f"{where}: the call failed: {_describe(exc)}") from exc
        if result.is_error:
            raise ToolError(f"{where}: the tool reported an error: {_text(result.content) or '(no message)'}")
        if result.structured_content is not None:
            return result.structured_content
        return _text(result.content)


async def mcp_tools(servers: Iterable[MCPServer]) -> list[Tool]:
    """The usable tools of several open servers; a name two servers share becomes ``{server}__{tool}`` for both."""
    servers = list(servers)
    counts = Counter(server.name for server in servers)
    if twice := sorted(name for name, n in counts.items() if n > 1):
        raise ConfigError(f"two MCP servers are named {', '.join(map(repr, twice))}: scopes and pins need one each")
    listed = [(server, await server.tools()) for server in servers]
    owners = Counter(tool.name for _, tools in listed for tool in tools)
    gathered: list[Tool] = [
        tool.renamed(_fit(f"{server.name}__{tool.name}")) if owners[tool.name] > 1 else tool
        for server, tools in listed for tool in tools
    ]
    if clashes := sorted(name for name, n in Counter(t.name for t in gathered).items() if n > 1):
        raise ConfigError(f"MCP tool names clash even after namespacing: {', '.join(map(repr, clashes))}")
    return gathered


def _model_names(listed: Sequence[mt.Tool]) -> dict[str, str | None]:
    """Each tool's name for models (the server's own when it is valid), None where two would clash."""
    names = {t.name: t.name if _TOOL_NAME.fullmatch(t.name) else _fit(re.sub(r"[^A-Za-z0-9_-]", "_", t.name) or "_")
             for t in listed}
    taken = Counter(names.values())
    return {remote: name if taken[name] == 1 or name == remote else None for remote, name in names.items()}


def _fit(name: str) -> str:
    """``name`` within the 64 characters models allow; a long one keeps a digest of the whole to stay unique."""
    if len(name) <= 64:
        return name
    return f"{name[:55]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _scope_set(server: str, tool: str, value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise ConfigError(f"MCP server {server!r}: scopes for {tool!r} must be a list of scope names, "
                          f"not the string {value!r}")
    return frozenset(value)


def _text(blocks: Sequence[mt.ContentBlock]) -> str:
    """A result's content as text: text blocks joined; other blocks named, not inlined."""
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, mt.TextContent):
            parts.append(block.text)
        elif isinstance(block, mt.EmbeddedResource) and isinstance(block.resource, mt.TextResourceContents):
            parts.append(block.resource.text)
        elif isinstance(block, mt.EmbeddedResource):
            parts.append(f"[binary resource {block.resource.uri} ({block.resource.mime_type or 'unknown type'})]")
        elif isinstance(block, mt.ResourceLink):
            parts.append(f"[resource link {block.uri}" + (f": {block.description}]" if block.description else "]"))
        else:
            parts.append(f"[{block.type} ({block.mime_type}), {len(block.data) * 3 // 4} bytes, not shown]")
    return "\n".join(parts)


def _describe(exc: BaseException) -> str:
    """An exception as one line; a group (from the SDK's task groups) as its leaves."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(_describe(inner) for inner in exc.exceptions))
    if isinstance(exc, MCPError):
        return f"{exc.message} (MCP error {exc.code})"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
