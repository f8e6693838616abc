"""The layers hold: checked by importing each layer's every module in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import importlib, json, pkgutil, sys
import {package} as root
for module in pkgutil.walk_packages(root.__path__, root.__name__ + "."):
    if not module.name.endswith("pytest_plugin"):
        importlib.import_module(module.name)
print(json.dumps(sorted({{name.split(".")[0] if not name.startswith("cyberark_ops.") else ".".join(name.split(".")[:2])
              for name in sys.modules}})))
"""


def _loaded(package: str) -> set[str]:
    code = PROBE.format(package=package)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out))


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        # The client layer: requests and the standard library, no Airflow, no glue, no emulator.
        (
            "cyberark_ops.client",
            {"airflow", "cyberark_ops.devserver", "cyberark_ops.settings", "cyberark_ops.fetch", "cyberark_ops.hooks"},
        ),
        # The emulator shares no code with the client: a bug common to both would pass every test.
        ("cyberark_ops.devserver", {"airflow", "cyberark_ops.client", "cyberark_ops.settings", "requests"}),
    ],
)
def test_a_layer_imports_nothing_above_or_beside_it(package: str, forbidden: set[str]) -> None:
    loaded = _loaded(package)
    assert not loaded & forbidden, f"{package} loaded {sorted(loaded & forbidden)}"
