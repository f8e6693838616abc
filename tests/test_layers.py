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


# What a fetch needs and a DAG file does not: the client layer's heavy modules and the fetch core.
FETCH_PATH = (
    "cyberark_ops.client.auth",
    "cyberark_ops.client.config",
    "cyberark_ops.client.refs",
    "cyberark_ops.client.transport",
    "cyberark_ops.fetch",
)
STEPS_PROBE = """
import json, sys
import airflow.sdk
loaded = {{}}
for step in {steps!r}:
    exec(step)
    loaded[step] = [name for name in {names!r} if name in sys.modules]
print(json.dumps(loaded))
"""


def _fetch_path_loaded(*steps: str) -> dict[str, list[str]]:
    """Runs ``steps`` one after the other in one fresh interpreter: what of FETCH_PATH is loaded after each."""
    probe = STEPS_PROBE.format(steps=steps, names=FETCH_PATH)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.slow
def test_the_glue_loads_the_client_layer_only_when_a_fetch_runs() -> None:
    """The dag-processor imports the glue with every parse of a DAG file (every 30 s by default), and
    Airflow builds the configured secrets backend in every process it starts; neither fetches."""
    steps = (
        "import cyberark_ops",
        "import cyberark_ops.hooks.cyberark",
        "import cyberark_ops.operators.vaulted",
        "import cyberark_ops.operators.sql",
        "import cyberark_ops.secrets",
        "import cyberark_ops.triggers",
        "from cyberark_ops.triggers import CyberArkSecretTrigger\nCyberArkSecretTrigger(['db/pw'], 'cyberark_default')",
        "from cyberark_ops import CyberArkHook, VaultedMixin, VaultedSqlOperator, vaulted",
        "CyberArkHook('cyberark_default')",
        "VaultedSqlOperator(task_id='t', credential_ref='db/pw', conn_type='sqlite', sql='select 1')",
        "from cyberark_ops.secrets import CyberArkSecretsBackend\n"
        "CyberArkSecretsBackend(connections_path='airflow/{conn_id}', url='https://conjur.example.com',\n"
        "                       account='acme', login='host/airflow', api_key_file='/run/key')",
    )
    assert _fetch_path_loaded(*steps) == {step: [] for step in steps}


@pytest.mark.slow
def test_the_probe_sees_the_client_layer_once_a_fetch_needs_it() -> None:
    """The control: the same probe reports the modules once something on the fetch path is used."""
    use_settings = (
        "from cyberark_ops.settings import ConnectionSettings\n"
        "s = ConnectionSettings.from_fields(host='https://conjur.example.com', login='host/x', password='k' * 20,\n"
        "                                   extras={'account': 'acme'})\n"
        "assert s.resolve('db/pw', source='test').variable_id == 'db/pw' and s.deadline == 60.0"
    )
    loaded = _fetch_path_loaded(use_settings, "import cyberark_ops.fetch")
    assert {"cyberark_ops.client.config", "cyberark_ops.client.refs"} <= set(loaded[use_settings])
    assert loaded["import cyberark_ops.fetch"] == list(FETCH_PATH)


def test_the_client_package_resolves_every_public_name_from_its_module() -> None:
    """Names of ``cyberark_ops.client`` load on first use: each must come from the module the table names."""
    import importlib

    import cyberark_ops.client as client

    assert sorted(client.__all__) == sorted(client._LAZY)
    for name, module in client._LAZY.items():
        assert getattr(client, name) is getattr(importlib.import_module(f"cyberark_ops.client.{module}"), name)
    assert set(client.__all__) <= set(dir(client))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = client.Nope


PRODUCT_PROBE = """
import importlib, json, pkgutil, sys
import cyberark_ops as root
def walk(path, prefix):
    # pkgutil.walk_packages would import cyberark_ops.testing itself to look inside it.
    for module in pkgutil.iter_modules(path, prefix):
        if module.name == "cyberark_ops.testing" or module.name.endswith("pytest_plugin"):
            continue
        imported = importlib.import_module(module.name)
        if module.ispkg:
            walk(imported.__path__, module.name + ".")
walk(root.__path__, "cyberark_ops.")
print(json.dumps(sorted(name for name in sys.modules if name.startswith("cyberark_ops.testing"))))
"""


@pytest.mark.slow
def test_no_product_module_imports_the_test_helpers() -> None:
    """``cyberark_ops.testing`` is for tests (it starts Airflow stacks and sidecars); the CLI once
    imported it for ``devserver --print-connections``."""
    out = subprocess.run([sys.executable, "-c", PRODUCT_PROBE], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
