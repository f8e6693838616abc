"""Airflow's own CLI discovers and validates the provider (``apache_airflow_provider`` entry point).

Airflow validates every provider's ``get_provider_info()`` against its JSON schema in every CLI
process, and one malformed provider makes the whole ``airflow`` command exit 1; so each check
asserts exit 0, and a control run with a deliberately broken copy of our provider info shows that
the exit code really does catch it. The commands run side by side in throwaway ``AIRFLOW_HOME``s.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cyberark_ops
from tests.airflow import PYTHON, airflow_env, json_output

pytestmark = pytest.mark.airflow

COMMANDS: dict[str, list[str]] = {
    "list": ["providers", "list", "-o", "json"],
    "hooks": ["providers", "hooks", "-o", "json"],
    "get": ["providers", "get", "cyberark-ops", "--full", "-o", "json"],
}

# A provider whose info is ours minus a required key, installed only on the control run's path.
BROKEN_PROVIDER = """
def get_provider_info():
    from cyberark_ops.provider_info import provider_info

    info = provider_info()
    info["package-name"] = "broken-cyberark-probe"
    del info["connection-types"][0]["hook-class-name"]
    return info
"""


def _broken_site(root: Path) -> Path:
    """A directory that, on ``PYTHONPATH``, is an installed distribution with a provider entry point."""
    (root / "broken_cyberark_probe").mkdir(parents=True)
    (root / "broken_cyberark_probe" / "__init__.py").write_text(BROKEN_PROVIDER)
    dist_info = root / "broken_cyberark_probe-0.0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-cyberark-probe\nVersion: 0.0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[apache_airflow_provider]\nprovider_info = broken_cyberark_probe:get_provider_info\n"
    )
    return root


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, subprocess.CompletedProcess[str]]]:
    root = tmp_path_factory.mktemp("provider-cli")
    runs: dict[str, tuple[list[str], dict[str, str]]] = {
        name: ([PYTHON, "-m", "airflow", *args], airflow_env(root / name)) for name, args in COMMANDS.items()
    }
    control_env = airflow_env(root / "control", {"PYTHONPATH": str(_broken_site(root / "site"))})
    runs["control"] = ([PYTHON, "-m", "airflow", *COMMANDS["list"]], control_env)
    procs = {
        name: subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (argv, env) in runs.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    yield results


def _ok(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    return json_output(result.stdout)


def test_providers_list_shows_the_package_and_its_version(cli: dict[str, subprocess.CompletedProcess[str]]) -> None:
    providers = {p["package_name"]: p for p in _ok(cli["list"])}
    assert "cyberark-ops" in providers
    assert providers["cyberark-ops"]["version"] == cyberark_ops.__version__
    assert providers["cyberark-ops"]["version"] == importlib.metadata.version("cyberark-ops")


def test_providers_hooks_shows_the_cyberark_connection_type(cli: dict[str, subprocess.CompletedProcess[str]]) -> None:
    hooks = [h for h in _ok(cli["hooks"]) if h["package_name"] == "cyberark-ops"]
    assert hooks == [
        {
            "connection_type": "cyberark",
            "class": "cyberark_ops.hooks.cyberark.CyberArkHook",
            "conn_id_attribute_name": "cyberark_conn_id",
            "package_name": "cyberark-ops",
            "hook_name": "CyberArk",
        }
    ]


def test_providers_get_full_marks_secret_fields_as_passwords(
    cli: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    (info,) = _ok(cli["get"])
    assert info["package-name"] == "cyberark-ops"
    assert info["versions"] == [cyberark_ops.__version__]
    assert info["documentation-url"].startswith("https://")
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "cyberark"
    assert conn_type["hook-class-name"] == "cyberark_ops.hooks.cyberark.CyberArkHook"
    fields = conn_type["conn-fields"]
    # One place per secret: the Password field (or a file); the key passphrase has no other.
    assert fields["client_key_password"]["schema"]["format"] == "password"
    assert "api_key" not in fields and "jwt_token" not in fields
    # Paths and ids are not secrets; marking them would hide them in the UI for no reason.
    for plain in ("api", "account", "app_id", "api_key_file", "jwt_token_path", "ca_bundle", "client_cert"):
        assert "format" not in fields[plain]["schema"], plain
    assert {"hidden-fields", "relabeling", "placeholders"} <= set(conn_type["ui-field-behaviour"])


def test_a_malformed_provider_info_would_fail_the_cli(cli: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """The control: the same command exits 1 once a provider's info breaks the schema, so the
    exit-0 assertions above do catch a malformed ``get_provider_info()``."""
    control = cli["control"]
    assert control.returncode == 1
    assert "'hook-class-name' is a required property" in control.stderr
