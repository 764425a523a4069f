"""Models: the one-call contract, the offline simulated and function models, and model strings.

Vendor adapters are optional extras that register themselves; nothing here imports them.
"""

from __future__ import annotations

from .base import (
    AssistantMessage,
    DeltaSink,
    Model,
    ModelRequest,
    ModelResponse,
    OutputSchema,
    Streaming,
    ToolCall,
    ToolResultMessage,
    ToolSpec,
    UserMessage,
)
from .function import FunctionModel
from .registry import available_providers, register_provider, resolve_model
from .simulated import SimulatedModel

__all__ = (
    "AssistantMessage",
    "DeltaSink",
    "FunctionModel",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "OutputSchema",
    "SimulatedModel",
    "Streaming",
    "ToolCall",
    "ToolResultMessage",
    "ToolSpec",
    "UserMessage",
    "available_providers",
    "register_provider",
    "resolve_model",
)
