"""Workflow files: fallback chains, prices, budgets and per-call output limits; and the CLI's budget flags."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cadenza import Budget, WorkflowError
from cadenza.cli import app
from cadenza.models.resilience import FallbackModel
from cadenza.models.simulated import SimulatedModel
from cadenza.patterns._workflow import parse_workflow


def workflow(text: str) -> dict[str, object]:
    loaded = yaml.safe_load(textwrap.dedent(text))
    assert isinstance(loaded, dict)
    return loaded


FILE = """
    name: costs
    models:
      strong: {model: "simulated:strong"}
    prices:
      "simulated:strong": {input: 3, output: 15}
    budget: {usd: 2.5, tokens: 100000}
    agents:
      - name: researcher
        model: [strong, "simulated:backup"]
        max_tokens: 300
        budget: {tokens: 5000}
    supervisor:
      name: lead
      workers: [researcher]
      budget: {tokens: 20000}
"""


def test_fallback_lists_prices_budgets_and_max_tokens_are_read() -> None:
    built = parse_workflow(workflow(FILE))

    agent = built.agents["researcher"]
    assert isinstance(agent.model, FallbackModel)
    assert [m.name for m in agent.model.models] == ["simulated:strong", "simulated:backup"]
    assert agent.max_tokens == 300 and agent.budget == Budget(tokens=5000)
    assert built.entry.budget == Budget(tokens=20000)
    assert built.budget == Budget(usd=2.5, tokens=100000)
    price = built.prices.lookup("simulated:strong")
    assert price is not None and (price.input, price.output) == (3, 15)
    assert built.prices.lookup("openai:gpt-5") is not None  # the shipped table is still underneath
    assert isinstance(built.entry.planner.model, SimulatedModel)


def test_bad_entries_name_their_key_path() -> None:
    bad = FILE.replace("{input: 3, output: 15}", "{input: -1, output: 15}").replace("max_tokens: 300", "max_tokens: 0")
    with pytest.raises(WorkflowError) as caught:
        parse_workflow(workflow(bad))
    message = str(caught.value)
    assert "prices.simulated:strong.input" in message
    assert "agents[0].max_tokens" in message

    unknown = FILE.replace('model: [strong, "simulated:backup"]', "model: [strong, nosuch]")
    with pytest.raises(WorkflowError, match=r"agents\[0\]\.model\[1\]: unknown model 'nosuch'"):
        parse_workflow(workflow(unknown))


def test_cli_budget_stops_the_run_partial_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent("""
        name: fan
        simulated: {latency: 0.01, seed: 2}
        agents:
    """) + "".join(f"  - name: w{i}\n    max_tokens: 32\n" for i in range(30)) + textwrap.dedent("""
        supervisor:
          name: lead
          workers: [""" + ", ".join(f"w{i}" for i in range(30)) + """]
          plan:
    """) + "".join(f"      - {{id: s{i}, agent: w{i}, instruction: part {i}}}\n" for i in range(30)), encoding="utf-8")

    result = CliRunner().invoke(app, ["--store", str(tmp_path / "runs.db"), "run", str(path), "Do it",
                                      "--json", "--budget-tokens", "200"])

    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "partial"
    assert "the run budget of 200 tokens is spent" in doc["error"]["message"]
    spent = doc["usage"]["input_tokens"] + doc["usage"]["output_tokens"]
    assert 0 < spent <= 200
    stopped = [step for step in doc["steps"] if step["status"] in ("skipped", "failed")]
    assert stopped and all("budget" in (step.get("error") or {}).get("message", step.get("skip_reason") or "")
                           for step in stopped)


def test_the_providers_example_builds_with_keys_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """No call is made: the file must load, with every model resolved to its adapter, tiers and budgets in place."""
    from cadenza.models.resilience import ResilientModel
    from cadenza.patterns._workflow import load_workflow

    monkeypatch.setenv("ANTHROPIC_API_KEY", "test")
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    built = load_workflow(Path(__file__).parents[1] / "examples" / "providers.yaml")

    assert not built.offline
    assert built.budget == Budget(usd=1.0)
    chain = built.agents["researcher_1"].model
    assert isinstance(chain, FallbackModel)
    assert [m.name for m in chain.models] == ["anthropic:claude-haiku-4-5", "openai:gpt-5-mini"]
    assert isinstance(chain.models[0], ResilientModel) and chain.models[0].retry.max_attempts == 5
    assert built.agents["triage"].model.name == "openai-compatible:llama3.1@http://localhost:11434/v1"
    assert built.entry.planner.model.name == "anthropic:claude-opus-4-6"
    assert built.agents["writer"].budget == Budget(usd=0.4)
    assert built.prices.lookup("openai-compatible:llama3.1") is not None


def test_a_missing_key_is_reported_with_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from cadenza.patterns._workflow import load_workflow

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    with pytest.raises(WorkflowError, match="ANTHROPIC_API_KEY"):
        load_workflow(Path(__file__).parents[1] / "examples" / "providers.yaml")
