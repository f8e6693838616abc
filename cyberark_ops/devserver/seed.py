"""Loading seed files (YAML or JSON) that describe the emulated vault."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import SeedError

if TYPE_CHECKING:
    from .api import EmulatedApi


def load_seed(
    source: str | Path | dict[str, Any] | None, apis: Mapping[str, EmulatedApi] | None = None
) -> dict[str, Any]:
    """A seed from a path, a mapping, or None for the built-in demo seed (of ``apis``' APIs)."""
    if source is None:
        return demo_seed(apis)
    if isinstance(source, dict):
        return source
    path = Path(source)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise SeedError(str(path), f"cannot read seed file ({exc.strerror})") from None
    return _parse(text, str(path))


def demo_seed(apis: Mapping[str, EmulatedApi] | None = None) -> dict[str, Any]:
    """The built-in demo seed, composed of each API's own part: ``demo_seed.yaml`` next to the
    module that defines the registered API object (``conjur/demo_seed.yaml``); an API without one
    gets no section. ``apis`` defaults to the built-in APIs."""
    if apis is None:
        from .app import DEFAULT_APIS

        apis = DEFAULT_APIS
    seed: dict[str, Any] = {}
    for name, api in apis.items():
        text = _demo_text(api)
        if text is not None:
            seed[name] = _parse(text, f"{name}/demo_seed.yaml").get(name, {})
    return seed


def _demo_text(api: EmulatedApi) -> str | None:
    module = getattr(api, "__module__", None) or type(api).__module__
    package = module.rpartition(".")[0]
    try:
        found = resources.files(package).joinpath("demo_seed.yaml") if package else None
        return found.read_text("utf-8") if found is not None and found.is_file() else None
    except (ModuleNotFoundError, TypeError, OSError):
        return None


def _parse(text: str, name: str) -> dict[str, Any]:
    try:
        data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise SeedError(where, f"not valid {'JSON' if name.endswith('.json') else 'YAML'}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SeedError(name, "the top level must be a mapping with conjur / vault / cloud / devserver")
    return data
