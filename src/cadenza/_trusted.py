"""Building messages the runtime assembles itself, without validating them a second time.

Validation happens at the edges: workflow files, model output, tool arguments,
anything deserialised from a store or another process. A Task the executor
builds from an already-validated plan step does not need the same checks again,
and on the scheduler's hot path those checks cost more than everything else a
step does. `TrustedBuilder` makes an ordinary pydantic instance (it dumps,
compares and re-validates like any other) from values the caller vouches for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

__all__ = ("TrustedBuilder",)

M = TypeVar("M", bound=BaseModel)

_new = object.__new__
_set = object.__setattr__


class TrustedBuilder(Generic[M]):
    """``TrustedBuilder(Task)(task_id=..., ...)`` -> a Task, defaults filled in, nothing re-validated.

    Only for values of the declared types, produced by cadenza itself; user input goes through
    the model's normal constructor.
    """

    __slots__ = ("_cls", "_factories", "_static")

    def __init__(self, cls: type[M]) -> None:
        self._cls = cls
        self._static: dict[str, Any] = {}
        self._factories: list[tuple[str, Callable[[], Any]]] = []
        for name, info in cls.model_fields.items():
            if info.default_factory is not None:
                self._factories.append((name, info.default_factory))  # type: ignore[arg-type]
            elif info.default is not PydanticUndefined:
                self._static[name] = info.default

    def __call__(self, **values: Any) -> M:
        data = {**self._static, **values}
        for name, factory in self._factories:
            if name not in data:
                data[name] = factory()
        obj = _new(self._cls)
        _set(obj, "__dict__", data)
        _set(obj, "__pydantic_fields_set__", set(values))
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj
