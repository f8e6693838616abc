"""The docs site builds with ``mkdocs build --strict`` and leaves no page out.

mkdocs' own validation (``validation:`` in ``mkdocs.yml``) turns broken links, links to files
outside ``docs/`` and missing anchors into warnings, and ``--strict`` fails on any warning; this
test also fails on a warning printed without failing the build, and on a page missing from nav
(mkdocs still builds a page left out of nav, so the check is on nav itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def _nav_pages(node: object) -> set[str]:
    if isinstance(node, str):
        return {node}
    if isinstance(node, list):
        return set().union(*(_nav_pages(item) for item in node))
    if isinstance(node, dict):
        return set().union(*(_nav_pages(value) for value in node.values()))
    return set()


def _pages() -> list[Path]:
    return sorted([*DOCS.glob("*.md"), *DOCS.glob("apis/*.md")])


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_site_builds_strict_with_every_page(tmp_path: Path) -> None:
    site = tmp_path / "site"
    # The material banner about MkDocs 2 is not a build warning; silence it so a real one stands out.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=110,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "WARNING" not in output, output

    pages = _pages()
    assert len(pages) >= 17, [p.name for p in pages]
    for page in pages:
        rel = page.relative_to(DOCS).with_suffix("")
        built = site / "index.html" if rel.as_posix() == "index" else site / rel / "index.html"
        assert built.is_file(), f"{page.relative_to(ROOT)} was not built"

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    in_nav = _nav_pages(config["nav"])
    missing = {p.relative_to(DOCS).as_posix() for p in pages} - in_nav
    assert not missing, f"pages not in mkdocs.yml nav: {sorted(missing)}"
    # A member filtered out or a module emptied would vanish from the reference without a warning.
    html = (site / "reference" / "index.html").read_text()
    for ident in (
        "hooks.cyberark.CyberArkHook",
        "hooks.cyberark.CyberArkHook.get_secret",
        "operators.sql.VaultedSqlOperator",
        "operators.vaulted.vaulted",
        "operators.vaulted.VaultedMixin",
        "decorators.with_cyberark_secret",
        "decorators.Secret",
        "decorators.cyberark_task",
        "secrets.CyberArkSecretsBackend",
        "scrub.task_scope",
        "client.errors.CyberArkError",
        "client.errors.NotFound",
    ):
        assert f'id="cyberark_ops.{ident}"' in html, ident
    # Sphinx roles are rewritten to inline code (docs/_ext/sphinx_roles.py), never shown raw.
    for role in (":class:", ":func:", ":meth:", ":mod:", ":exc:", ":attr:"):
        assert role not in html, role
