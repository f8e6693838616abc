"""The sdist and wheel build with the lowest setuptools ``pyproject.toml`` declares, and the wheel
installs into a fresh Airflow venv and works there (not the editable install of this checkout).

uv builds in an isolated environment and installs from its cache; the fresh venv is constrained
to this venv's versions so nothing new is resolved.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.packaging, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
UV = str(Path(sys.executable).with_name("uv"))


def _run(*args: str, cwd: Path) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=540, check=False)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _declared_build_requirement() -> str:
    requires = re.search(r"^requires = \[(.*)\]", (ROOT / "pyproject.toml").read_text(), re.M)
    assert requires is not None
    (requirement,) = re.findall(r'"(setuptools>=[0-9.]+)"', requires.group(1))
    return requirement


def test_the_lowest_declared_setuptools_builds_a_wheel_that_installs_into_fresh_airflow(tmp_path: Path) -> None:
    declared = _declared_build_requirement()
    assert declared == "setuptools>=77", "license = 'Apache-2.0' and license-files need setuptools 77"
    # The lowest release the index serves within the declared range (77.0.0 itself is not served).
    (tmp_path / "declared.in").write_text(declared + "\n")
    lowest = _run(
        UV, "pip", "compile", "--resolution", "lowest", "--no-header", "--no-annotate", "declared.in", cwd=tmp_path
    )
    (pin,) = [line for line in lowest.splitlines() if line.startswith("setuptools==")]
    assert pin.startswith("setuptools==77.0."), pin
    build_constraints = tmp_path / "build-constraints.txt"
    build_constraints.write_text(pin + "\n")
    dist = tmp_path / "dist"
    # Default uv build: the sdist first, then the wheel from the sdist, so the sdist must be complete.
    _run(UV, "build", "--out-dir", str(dist), "--build-constraint", str(build_constraints), str(ROOT), cwd=tmp_path)
    (wheel,) = dist.glob("cyberark_ops-*.whl")
    (sdist,) = dist.glob("cyberark_ops-*.tar.gz")
    assert sdist.stat().st_size > 0

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        generator = archive.read(next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode()
        assert f"Generator: setuptools ({pin.split('==')[1]})" in generator, generator
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert "cyberark_ops/devserver/conjur/demo_seed.yaml" in names
    assert "License-Expression: Apache-2.0" in metadata
    assert "Author: cyberark-ops maintainers" in metadata or "Author-email" in metadata, metadata[:2000]
    assert "Classifier: Development Status :: " in metadata
    assert "Classifier: Programming Language :: Python :: 3.10" in metadata

    # This venv's versions as constraints: Airflow comes from uv's cache, nothing is resolved anew.
    frozen = _run(UV, "pip", "freeze", "--python", sys.executable, cwd=tmp_path)
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("\n".join(line for line in frozen.splitlines() if "==" in line))
    venv = tmp_path / "venv"
    _run(UV, "venv", "--python", sys.executable, str(venv), cwd=tmp_path)
    python = str(venv / "bin" / "python")
    _run(UV, "pip", "install", "--python", python, "--constraint", str(constraints), str(wheel), cwd=tmp_path)

    assert "run the local CyberArk dev server" in _run(str(venv / "bin" / "cyberark-ops"), "--help", cwd=tmp_path)
    probe = (
        "import cyberark_ops, airflow; from cyberark_ops import CyberArkHook; "
        "from cyberark_ops.devserver.seed import load_seed; load_seed(None); "
        "print(cyberark_ops.__file__, airflow.__version__, CyberArkHook.conn_type)"
    )
    location, airflow_version, conn_type = _run(python, "-c", probe, cwd=tmp_path).split()
    assert location.startswith(str(venv)), location
    assert airflow_version.startswith("3.") and conn_type == "cyberark"
