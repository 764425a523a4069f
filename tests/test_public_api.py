"""The package facade: ``__all__`` is exactly what is public, and every name in it resolves."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import tempfile

import pytest

import cadenza


def test_every_name_in_all_resolves() -> None:
    for name in cadenza.__all__:
        assert getattr(cadenza, name) is not None, name


def test_all_is_sorted_unique_and_matches_dir() -> None:
    assert list(cadenza.__all__) == sorted(set(cadenza.__all__))
    assert isinstance(cadenza.__all__, tuple)
    assert dir(cadenza) == sorted(cadenza.__all__)


def test_unknown_attributes_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NotAThing"):
        cadenza.NotAThing  # type: ignore[attr-defined]  # noqa: B018


def test_each_module_all_lists_only_names_it_defines() -> None:
    for info in pkgutil.walk_packages(cadenza.__path__, "cadenza."):
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            assert hasattr(module, name), f"{info.name}.__all__ names missing {name!r}"


SIGNALS = {"ApprovalRequired"}
"""Control flow, not failures: kept outside the error tree, so ``except CadenzaError`` never swallows them."""


def test_errors_share_one_root_and_signals_stand_apart() -> None:
    for name in cadenza.__all__:
        value = getattr(cadenza, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, cadenza.CadenzaError) is (name not in SIGNALS), name


def test_the_error_tree_drawn_in_errors_matches_the_code() -> None:
    import re

    from cadenza import _errors

    drawn: dict[str, str | None] = {}
    parents: list[str] = []
    for line in (_errors.__doc__ or "").splitlines():
        found = re.match(r"^    ((?:[│ ]   )*)(?:[├└]── )?([A-Z][A-Za-z]+)(?:\s{2,}|$)", line)
        if found is None:
            continue
        depth = len(found.group(1)) // 4 + (1 if "──" in line else 0)
        name = found.group(2)
        parents[depth:] = [name]
        drawn[name] = parents[depth - 1] if depth else None
    classes = {name: value for name, value in vars(_errors).items()
               if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == _errors.__name__}
    assert set(drawn) == set(classes)
    for name, parent in drawn.items():
        bases = [b.__name__ for b in classes[name].__bases__]
        assert bases[0] == (parent or "Exception"), name
        assert classes[name].code.value, name  # every class has its own code
    assert len({c.code for c in classes.values()}) == len(classes)


def test_the_version_is_the_projects() -> None:
    import tomllib
    from pathlib import Path

    import cadenza
    from cadenza._version import __version__

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    assert cadenza.__version__ == __version__ == project["project"]["version"]


def test_an_agent_and_a_team_load_no_store_until_a_run_records_and_no_tracing_api_until_tracing_is_on() -> None:
    """What a run needs is imported when it needs it: a team that runs without a store never loads the stores, and
    a run without a tracer provider never loads the OpenTelemetry API."""
    code = ("import sys\n"
            "from cadenza import Agent, Supervisor, Plan\n"
            "loaded = lambda: sorted(m for m in ('cadenza.stores', 'cadenza.engine._journal', 'sqlite3', 'opentelemetry.trace', 'opentelemetry.metrics') if m in sys.modules)\n"
            "print(loaded())\n"
            "team = Supervisor('lead', workers=[Agent('a')], plan=Plan.of({'id': 's', 'agent': 'a', 'instruction': 'go'}))\n"
            "assert team.run_sync('goal').status == 'success'\n"
            "print(loaded())\n"
            "assert team.run_sync('goal', store=sys.argv[1]).status == 'success'\n"
            "print(loaded())\n")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", code, f"{tmp}/runs.db"], capture_output=True, text=True,
                             timeout=60).stdout.splitlines()

    assert out == ["[]", "[]", "['cadenza.engine._journal', 'cadenza.stores', 'sqlite3']"]


def test_every_event_type_is_public_in_cadenza_events() -> None:
    """A sink's author imports what it receives from ``cadenza.events``, never from a private module."""
    import dataclasses

    from cadenza import _events, events

    defined = {name for name, value in vars(_events).items()
               if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == _events.__name__}
    assert defined <= set(events.__all__)
    assert {"Event", "EventSink", "Report", "EventLog", "configure_logging"} <= set(events.__all__)


def test_the_types_a_result_hands_out_are_public() -> None:
    result_types = {"RunResult", "StepRecord", "PlanOutcome", "Result", "Usage", "ErrorInfo", "ToolCall", "Plan", "Step"}
    assert result_types <= set(cadenza.__all__)


def test_the_readme_points_to_no_private_module() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    private = sorted(set(re.findall(r"cadenza(?:\.[a-z_]+)*\._[a-z_]+", readme)))
    assert private == []
