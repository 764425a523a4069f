"""A model string that names no provider says what was probably meant."""

from __future__ import annotations

import pytest

from cadenza import UnknownModelError, WorkflowError, resolve_model
from cadenza.patterns._workflow import parse_workflow


@pytest.mark.parametrize(("written", "meant"), [
    ("simulatd:fast", "simulated:fast"),            # a misspelt provider
    ("simulatd", "simulated"),
    ("openai/gpt-4o", "openai:gpt-4o"),             # LiteLLM's and OpenRouter's provider/model
    ("anthropic/claude-sonnet-4-5", "anthropic:claude-sonnet-4-5"),
    ("gpt-4o", "openai:gpt-4o"),                    # a bare model name
    ("o3-mini", "openai:o3-mini"),
    ("claude-haiku-4-5", "anthropic:claude-haiku-4-5"),
])
def test_a_near_miss_gets_a_did_you_mean(written: str, meant: str) -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve_model(written)
    assert f"(did you mean {meant!r}?)" in str(caught.value)
    assert "a model string is provider:model" in str(caught.value)


@pytest.mark.parametrize("written", ["zzz:x", "mistral/large", "llama3"])
def test_no_guess_when_nothing_is_near(written: str) -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve_model(written)
    assert "did you mean" not in str(caught.value)


def test_a_workflow_file_and_its_model_override_say_it_too() -> None:
    data = {"name": "w", "agents": [{"name": "a", "model": "simulatd:fast"}],
            "supervisor": {"name": "lead", "workers": ["a"]}}
    with pytest.raises(WorkflowError, match=r"agents\[0\]\.model: .*did you mean 'simulated:fast'"):
        parse_workflow(data)
    data["agents"] = [{"name": "a"}]
    with pytest.raises(WorkflowError, match=r"--model: unknown model 'gpt-4o' \(did you mean 'openai:gpt-4o'\?\)"):
        parse_workflow(data, model="gpt-4o")
