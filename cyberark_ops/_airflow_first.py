"""Importing ``airflow`` loads the configured secrets backend, i.e. ``cyberark_ops.secrets``.

A cyberark_ops module that is the first in its process to import Airflow would otherwise be
half-initialized while that backend imports it (or is it), and Airflow's start-up fails with
"partially initialized module". Such a module calls :func:`import_airflow_first` before its own
Airflow imports: Airflow then starts without seeing the half-done module and loads a complete copy.
"""

from __future__ import annotations

import importlib
import sys


def import_airflow_first(module_name: str) -> None:
    """Starts Airflow with ``module_name`` out of ``sys.modules``; a no-op once Airflow is imported.

    If Airflow's start-up imported ``module_name`` itself, that complete copy stays in
    ``sys.modules`` and is what the importer receives; the caller's own execution finishes
    unused. Otherwise the caller's module is put back and goes on as usual.
    """
    if "airflow" in sys.modules:
        return
    in_progress = sys.modules.pop(module_name, None)
    try:
        importlib.import_module("airflow")
    finally:
        if in_progress is not None:
            sys.modules.setdefault(module_name, in_progress)
