"""Provider metadata: one malformed dict breaks every ``airflow`` command, so validate it exactly
as Airflow does, against Airflow's own schema, and check the distribution name."""

from __future__ import annotations

import json
from importlib import metadata, resources

import jsonschema

import cyberark_ops


def test_provider_info_matches_airflows_schema() -> None:
    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    info = cyberark_ops.get_provider_info()
    jsonschema.validate(info, schema)


def test_package_name_is_the_distribution_name() -> None:
    info = cyberark_ops.get_provider_info()
    assert metadata.distribution(info["package-name"]).metadata["Name"] == info["package-name"]
    assert info["versions"][0] == metadata.version("cyberark-ops")


def test_entry_point_is_registered() -> None:
    points = metadata.entry_points(group="apache_airflow_provider")
    ours = [p for p in points if p.value == "cyberark_ops:get_provider_info"]
    assert len(ours) == 1
    assert ours[0].load()() == cyberark_ops.get_provider_info()


def test_importing_the_package_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, cyberark_ops; print(sorted(m for m in ('airflow', 'requests') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
