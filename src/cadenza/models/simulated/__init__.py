"""The simulated model: offline, instant and reproducible, so workflows run without API keys.

`SimulatedModel` (``_model``) answers from a seed mixed with each request; the private modules beside it
generate what it answers with: JSON Schema instances (``_schema_*``), strings that match a pattern, numbers
within bounds, and plans that use the team they are given.
"""

from ._model import ScriptedReply, SimulatedModel, estimate_input_tokens, estimate_output_tokens

__all__ = ("ScriptedReply", "SimulatedModel", "estimate_input_tokens", "estimate_output_tokens")
