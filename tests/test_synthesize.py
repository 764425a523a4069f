"""When a team calls its synthesiser: ``auto`` (unless the plan's one last step already gave the answer), ``always``,
``never`` (the last step's output is the team's)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from cadenza import Agent, ConfigError, FunctionModel, ModelRequest, Plan, Supervisor, WorkflowError, load_workflow
from cadenza.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class Verdict(BaseModel):
    verdict: str
    confidence: float


def lead_model(*plans: list[tuple[str, str, list[str]]]) -> FunctionModel:
    """Plans from ``plans`` in order; synthesises as ``synthesised``."""
    remaining = list(plans)

    def reply(request: ModelRequest) -> str:
        if request.output_schema is not None and request.output_schema.name == "plan":
            steps = remaining.pop(0)
            return json.dumps({"steps": [{"id": i, "agent": a, "instruction": f"do {i}", "depends_on": d}
                                         for i, a, d in steps]})
        if request.output_schema is not None:
            return '{"verdict": "synthesised", "confidence": 0.5}'
        return "synthesised"

    return FunctionModel(reply, name="lead")


def agent(name: str, answer: str = "", output_type: type[Any] | None = None) -> Agent[Any]:
    return Agent(name, f"I am {name}.", model=FunctionModel(lambda r: answer or f"{name} done", name=name),
                 output_type=output_type)


def synthesis_calls(model: FunctionModel) -> int:
    return sum(not (c.output_schema is not None and c.output_schema.name == "plan") for c in model.calls)


DIAMOND = [("r1", "a", []), ("r2", "b", []), ("w", "writer", ["r1", "r2"])]
TWO_ENDS = [("r1", "a", []), ("r2", "b", [])]


async def test_auto_returns_the_one_last_steps_output_without_a_synthesis_call() -> None:
    lead = lead_model(DIAMOND)
    team = Supervisor("lead", workers=[agent("a"), agent("b"), agent("writer")], model=lead)
    result = await team.run("goal")

    assert (result.status, result.output) == ("success", "writer done")
    assert synthesis_calls(lead) == 0
    assert result.usage.model_calls == 4  # the plan and three steps


async def test_auto_synthesises_a_plan_that_ends_in_several_steps() -> None:
    lead = lead_model(TWO_ENDS)
    team = Supervisor("lead", workers=[agent("a"), agent("b")], model=lead)
    result = await team.run("goal")

    assert (result.status, result.output) == ("success", "synthesised")
    assert synthesis_calls(lead) == 1


@pytest.mark.parametrize(("writer_type", "writer_says", "synthesised"), [
    (Verdict, '{"verdict": "from the writer", "confidence": 0.9}', False),
    (None, "a plain sentence, not a Verdict", True),
])
async def test_auto_skips_synthesis_only_for_an_output_of_the_teams_type(writer_type: type[Any] | None,
                                                                         writer_says: str, synthesised: bool) -> None:
    lead = lead_model(DIAMOND)
    team = Supervisor("lead", workers=[agent("a"), agent("b"), agent("writer", writer_says, writer_type)],
                      model=lead, output_type=Verdict)
    result = await team.run("goal")

    assert result.status == "success"
    assert result.output == (Verdict(verdict="synthesised", confidence=0.5) if synthesised
                             else Verdict(verdict="from the writer", confidence=0.9))
    assert synthesis_calls(lead) == int(synthesised)


async def test_always_synthesises_even_after_one_last_step() -> None:
    lead = lead_model(DIAMOND)
    team = Supervisor("lead", workers=[agent("a"), agent("b"), agent("writer")], model=lead, synthesize="always")
    result = await team.run("goal")

    assert (result.output, synthesis_calls(lead)) == ("synthesised", 1)


async def test_never_has_the_planner_end_its_plan_in_one_step() -> None:
    lead = lead_model(TWO_ENDS, DIAMOND)
    team = Supervisor("lead", workers=[agent("a"), agent("b"), agent("writer")], model=lead, synthesize="never")
    result = await team.run("goal")

    assert (result.status, result.output) == ("success", "writer done")
    assert synthesis_calls(lead) == 0
    assert "End with one step that depends on every other step" in str(lead.calls[0].messages[0])
    repair = str(lead.calls[1].messages[-1])  # the first plan went back with what was wrong with it
    assert "the plan ends in 2 steps (r1, r2); it must end in one step" in repair


def test_never_refuses_a_written_plan_that_ends_in_several_steps() -> None:
    plan = Plan.of(*({"id": i, "agent": a, "instruction": "go", "depends_on": d} for i, a, d in TWO_ENDS))
    with pytest.raises(ConfigError, match=r"synthesize='never' .* its plan ends in 2 steps \(r1, r2\)"):
        Supervisor("lead", workers=[agent("a"), agent("b")], model="simulated:lead", plan=plan, synthesize="never")


async def test_never_fails_clearly_when_the_last_steps_output_is_not_the_teams_type() -> None:
    team = Supervisor("lead", workers=[agent("a"), agent("b"), agent("writer")], model=lead_model(DIAMOND),
                      output_type=Verdict, synthesize="never")
    result = await team.run("goal")

    assert result.status == "failure"
    assert result.error is not None
    assert result.error.message == ("team 'lead' does not synthesise (synthesize='never'), and the output of its "
                                    "last step 'w' is not a Verdict")


async def test_never_with_a_failed_step_is_partial_with_what_the_steps_made() -> None:
    def broken(request: ModelRequest) -> str:
        raise RuntimeError("kaput")

    workers = [agent("a"), Agent("b", "I break.", model=FunctionModel(broken, name="b")), agent("writer")]
    team = Supervisor("lead", workers=workers, model=lead_model(DIAMOND), synthesize="never")
    result = await team.run("goal")

    assert result.status == "partial"
    assert result.output == {"r1": "a done"}
    assert result.error is not None and result.error.message == "steps not completed: r2, w"


def test_a_bad_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="synthesize must be 'auto', 'always' or 'never', not 'sometimes'"):
        Supervisor("lead", workers=[agent("a")], synthesize="sometimes")  # type: ignore[call-overload]


WORKFLOW = """\
    name: wf
    agents:
      - {name: a, instructions: Work.}
      - {name: b, instructions: Work.}
    supervisor:
      name: lead
      workers: [a, b]
      synthesize: %s
      plan:
        - {id: r1, agent: a, instruction: go}
        - {id: r2, agent: b, instruction: go}
"""


def test_a_workflow_file_says_when_to_synthesise(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(WORKFLOW % "always"), encoding="utf-8")
    assert load_workflow(path).entry.synthesize == "always"  # type: ignore[union-attr]

    path.write_text(textwrap.dedent(WORKFLOW % "never"), encoding="utf-8")
    with pytest.raises(WorkflowError, match=r"supervisor: team 'lead': synthesize='never' .* ends in 2 steps"):
        load_workflow(path)

    path.write_text(textwrap.dedent(WORKFLOW % "sometimes"), encoding="utf-8")
    with pytest.raises(WorkflowError, match=r"supervisor.synthesize: .*'auto', 'always' or 'never'"):
        load_workflow(path)


@pytest.mark.parametrize(("mode", "synthesised"), [("auto", False), ("always", True)])
def test_the_research_example_is_not_paid_for_twice(tmp_path: Path, mode: str, synthesised: bool) -> None:
    """Five researchers and a writer: by default the writer's report is the answer, and no call re-reads it."""
    text = (EXAMPLES / "research.yaml").read_text(encoding="utf-8")
    path = tmp_path / "research.yaml"
    path.write_text(text.replace("  workers: [researcher_1", f"  synthesize: {mode}\n  workers: [researcher_1"),
                    encoding="utf-8")
    done = CliRunner().invoke(app, ["run", str(path), "Compare the last three papers on X", "--json", "--no-store",
                                    "--model", "simulated:fast"])
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    writer = next(s for s in document["steps"] if s["agent"] == "writer")

    assert document["usage"]["model_calls"] == 7 + synthesised  # the plan, five researchers and the writer
    assert (document["output"] == writer["output"]) is not synthesised
    if not synthesised:
        assert document["usage"]["input_tokens"] <= 2500
