"""One Airflow stack for the test modules that only need "a stack running these DAGs".

A stack costs about fifteen CPU-seconds to start and stop on this machine (api-server, scheduler and
dag-processor each import Airflow), whatever its DAGs do. A module that runs its DAGs once and then
inspects what they left registers a :class:`StackPart`: its DAG files, the environment its DAGs need
and the vault they talk to. The session fixture ``shared_stack_runs`` (``tests/conftest.py``, so
that the leak suite in ``tests/guarantees`` reaches it too) starts every selected module's part,
runs all their DAGs on one stack at once, and hands each module its own result.

What keeps the parts apart: each has its own dev server (its own seed, canaries and audit log),
its own connection ids and DAG ids (a clash is refused before anything starts), and each module
reads only its own DAGs' task logs and runs; a module searching the whole metadata DB for its
canaries also searches the other parts' rows, which is a stricter check, not a looser one. The
modules sharing the stack run on one xdist worker (``SCOPE_GROUPS`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cyberark_ops.testing.airflow_stack import AirflowStack
from tests.airflow import DagRun, run_dags


@dataclass
class StackPart:
    """What one module adds to the shared stack, and how it reads its result afterwards."""

    dag_files: Mapping[str, str]
    """File name -> source, written into the shared DAGs folder."""
    env: Mapping[str, str]
    """Environment every Airflow process of the stack gets (connections, settings the DAGs read)."""
    dag_ids: tuple[str, ...]
    finish: Callable[[AirflowStack, Mapping[str, DagRun]], Any]
    """Called with the stopped stack and this part's runs (by DAG id), while its vault still runs."""


PartFactory = Callable[[Path, contextlib.ExitStack], StackPart]
"""Builds a part in its own directory; whatever it starts (a dev server) goes on the exit stack."""

PARTS: dict[str, PartFactory] = {}
"""Module name -> its part's factory, filled as the modules are imported (at collection)."""


def shared_stack_part(factory: PartFactory) -> PartFactory:
    """Registers ``factory`` as its module's part (one per module)."""
    module = factory.__module__
    if module in PARTS and PARTS[module] is not factory:
        raise RuntimeError(f"{module} registers a second shared stack part")
    PARTS[module] = factory
    return factory


def _merge(parts: Mapping[str, StackPart], dags: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    owner: dict[str, str] = {}
    for module, part in parts.items():
        for name in [*part.env, *(f"dag file {f}" for f in part.dag_files), *(f"dag {d}" for d in part.dag_ids)]:
            if name in owner:
                raise RuntimeError(f"shared stack: {name} is used by both {owner[name]} and {module}")
            owner[name] = module
        env.update(part.env)
        for file_name, source in part.dag_files.items():
            (dags / file_name).write_text(source)
    return env


def run_parts(modules: Iterable[str], base: Path, *, timeout: float = 300) -> dict[str, Any]:
    """Starts the parts of ``modules``, runs all their DAGs on one stack, returns each module's result."""
    dags = base / "dags"
    dags.mkdir(parents=True)
    with contextlib.ExitStack() as resources:
        parts = {module: PARTS[module](base / module.rsplit(".", 1)[-1], resources) for module in sorted(modules)}
        stack = AirflowStack(base / "home", dags, _merge(parts, dags))
        runs = run_dags(stack, [dag_id for part in parts.values() for dag_id in part.dag_ids], timeout=timeout)
        return {
            module: part.finish(stack, {dag_id: runs[dag_id] for dag_id in part.dag_ids})
            for module, part in parts.items()
        }
