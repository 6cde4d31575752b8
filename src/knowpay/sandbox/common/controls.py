"""The control routes every simulator (but WeChat Pay's) offers its tests and the demo:

    POST /_faults (201: the fault) · GET /_faults · DELETE /_faults (204) ·
    DELETE /_faults/{id} (204; 404 "no such fault") · GET /_notifications · POST /_reset (204)

The gateway gives its fault model (the JSON POST /_faults takes), its fault book, the
/_notifications route (its query parameters are the gateway's) and what a reset does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


class _Fault(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


class _Faults(Protocol):
    def add(self, **spec: Any) -> _Fault: ...
    def all(self) -> list[Any]: ...
    def remove(self, fault_id: str) -> bool: ...
    def clear(self) -> None: ...


def add_control_routes(
    app: FastAPI,
    *,
    faults: _Faults,
    fault_model: type[BaseModel],
    notifications: Callable[..., list[dict[str, Any]]],
    reset: Callable[[], None],
    check_fault: Callable[[Any], None] | None = None,
) -> None:
    """Add the shared control routes to a simulator's app. `check_fault` may refuse a fault
    (raising an HTTPException) before it is added."""

    def add_fault(fault: BaseModel) -> dict[str, Any]:
        if check_fault is not None:
            check_fault(fault)
        return faults.add(**fault.model_dump()).as_dict()

    add_fault.__annotations__["fault"] = fault_model  # the body FastAPI validates
    app.post("/_faults", status_code=201)(add_fault)

    @app.get("/_faults")
    def list_faults() -> list[dict[str, Any]]:
        return [fault.as_dict() for fault in faults.all()]

    @app.delete("/_faults", status_code=204)
    def clear_faults() -> None:
        faults.clear()

    @app.delete("/_faults/{fault_id}", status_code=204)
    def remove_fault(fault_id: str) -> None:
        if not faults.remove(fault_id):
            raise HTTPException(404, "no such fault")

    app.get("/_notifications")(notifications)
    app.post("/_reset", status_code=204)(reset)
