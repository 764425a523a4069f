"""cadenza: orchestrate teams of LLM agents.

An orchestrator decomposes a goal into a plan (a validated DAG), runs its steps
on specialist workers in parallel, and synthesises their results. Everything
runs offline on the simulated model until a real provider is configured.

Public names load on first use, so ``import cadenza`` stays cheap for the CLI
and for tools that only need one piece.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = (
    "Agent",
    "AgentProposal",
    "ApprovalError",
    "ApprovalRequired",
    "AuditLog",
    "AuditVerdict",
    "Budget",
    "BudgetExceeded",
    "BusError",
    "CadenzaError",
    "CircuitBreaker",
    "CircuitOpen",
    "ConfigError",
    "DisabledTool",
    "ErrorCode",
    "ErrorInfo",
    "ExecutionPolicy",
    "Executor",
    "FallbackModel",
    "FunctionModel",
    "HierarchyError",
    "MCPPins",
    "MCPServer",
    "MCPTool",
    "MaxTurnsExceeded",
    "Model",
    "ModelError",
    "ModelRequest",
    "ModelResponse",
    "ModelRetry",
    "OutputValidationError",
    "PeerGroup",
    "PeerMessage",
    "Plan",
    "PlanError",
    "PlanOutcome",
    "PlanProblem",
    "Planner",
    "Price",
    "Prices",
    "ProcessBackend",
    "RayBackend",
    "Result",
    "ResumeError",
    "RetryPolicy",
    "RunNotFound",
    "RunResult",
    "SecurityError",
    "SideEffect",
    "SimulatedModel",
    "SpawnError",
    "SpawnPolicy",
    "Step",
    "StepRecord",
    "StepTimeout",
    "StopPolicy",
    "Store",
    "StoreError",
    "Supervisor",
    "Task",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolContext",
    "ToolError",
    "UnknownModelError",
    "Usage",
    "WorkerLost",
    "WorkflowError",
    "Workspace",
    "WorkspaceConflict",
    "WorkspaceValue",
    "__version__",
    "approve",
    "load_workflow",
    "mcp_tools",
    "open_store",
    "resolve_model",
    "tool",
    "workspace_tools",
)

_WHERE: dict[str, str] = {
    "Agent": ".patterns._agent",
    "AgentProposal": "._plan",
    "ApprovalError": "._errors",
    "ApprovalRequired": "._errors",
    "AuditLog": ".security._audit",
    "AuditVerdict": ".security._audit",
    "Budget": "._budget",
    "BudgetExceeded": "._errors",
    "BusError": "._errors",
    "CadenzaError": "._errors",
    "ErrorCode": "._errors",
    "CircuitBreaker": ".models.resilience",
    "CircuitOpen": "._errors",
    "ConfigError": "._errors",
    "DisabledTool": ".tools._mcp",
    "ErrorInfo": "._messages",
    "ExecutionPolicy": ".engine._executor",
    "Executor": ".engine._executor",
    "FallbackModel": ".models.resilience",
    "FunctionModel": ".models.function",
    "HierarchyError": "._errors",
    "MCPPins": ".tools._mcp_pins",
    "MCPServer": ".tools._mcp",
    "MCPTool": ".tools._mcp",
    "MaxTurnsExceeded": "._errors",
    "Model": ".models.base",
    "ModelError": "._errors",
    "ModelRequest": ".models.base",
    "ModelResponse": ".models.base",
    "ModelRetry": ".models.resilience",
    "OutputValidationError": "._errors",
    "PeerGroup": ".patterns._peers",
    "PlanOutcome": "._outcomes",
    "PeerMessage": "._messages",
    "Plan": "._plan",
    "PlanError": "._errors",
    "PlanProblem": "._plan",
    "Planner": ".patterns._planner",
    "Price": ".models.pricing",
    "Prices": ".models.pricing",
    "Result": "._messages",
    "ResumeError": "._errors",
    "RetryPolicy": ".engine._executor",
    "RunNotFound": "._errors",
    "RunResult": "._result",
    "SecurityError": "._errors",
    "SideEffect": ".tools._tools",
    "SimulatedModel": ".models.simulated",
    "SpawnError": "._errors",
    "SpawnPolicy": ".patterns._spawn",
    "Step": "._plan",
    "StepTimeout": "._errors",
    "StepRecord": "._outcomes",
    "StopPolicy": ".patterns._peers",
    "WorkerLost": "._errors",
    "ProcessBackend": ".backends.process",
    "RayBackend": ".backends.ray",
    "Store": ".stores.base",
    "StoreError": "._errors",
    "Supervisor": ".patterns._supervisor",
    "Task": "._messages",
    "Tool": ".tools._tools",
    "ToolArgumentsError": "._errors",
    "ToolCall": ".models.base",
    "ToolContext": ".tools._tools",
    "ToolError": "._errors",
    "UnknownModelError": "._errors",
    "Usage": "._usage",
    "WorkflowError": "._errors",
    "Workspace": "._workspace",
    "WorkspaceConflict": "._errors",
    "WorkspaceValue": "._workspace",
    "approve": ".engine._durable",
    "load_workflow": ".patterns._workflow",
    "mcp_tools": ".tools._mcp",
    "open_store": ".stores",
    "resolve_model": ".models.registry",
    "tool": ".tools._tools",
    "workspace_tools": ".tools._workspace_tools",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cadenza' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from ._budget import Budget
    from ._errors import (
        ApprovalError,
        ApprovalRequired,
        BudgetExceeded,
        BusError,
        CadenzaError,
        CircuitOpen,
        ConfigError,
        ErrorCode,
        HierarchyError,
        MaxTurnsExceeded,
        ModelError,
        OutputValidationError,
        PlanError,
        ResumeError,
        RunNotFound,
        SecurityError,
        SpawnError,
        StepTimeout,
        StoreError,
        ToolArgumentsError,
        ToolError,
        UnknownModelError,
        WorkerLost,
        WorkflowError,
        WorkspaceConflict,
    )
    from ._messages import ErrorInfo, PeerMessage, Result, Task
    from ._outcomes import PlanOutcome, StepRecord
    from ._plan import AgentProposal, Plan, PlanProblem, Step
    from ._result import RunResult
    from ._usage import Usage
    from ._workspace import Workspace, WorkspaceValue
    from .backends.process import ProcessBackend
    from .backends.ray import RayBackend
    from .engine._durable import approve
    from .engine._executor import ExecutionPolicy, Executor, RetryPolicy
    from .models.base import Model, ModelRequest, ModelResponse, ToolCall
    from .models.function import FunctionModel
    from .models.pricing import Price, Prices
    from .models.registry import resolve_model
    from .models.resilience import CircuitBreaker, FallbackModel, ModelRetry
    from .models.simulated import SimulatedModel
    from .patterns._agent import Agent
    from .patterns._peers import PeerGroup, StopPolicy
    from .patterns._planner import Planner
    from .patterns._spawn import SpawnPolicy
    from .patterns._supervisor import Supervisor
    from .patterns._workflow import load_workflow
    from .security._audit import AuditLog, AuditVerdict
    from .stores import open_store
    from .stores.base import Store
    from .tools._mcp import DisabledTool, MCPServer, MCPTool, mcp_tools
    from .tools._mcp_pins import MCPPins
    from .tools._tools import SideEffect, Tool, ToolContext, tool
    from .tools._workspace_tools import workspace_tools
