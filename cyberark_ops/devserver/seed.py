"""Loading seed files (YAML or JSON) that describe the emulated vault."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import SeedError


def load_seed(source: str | Path | dict[str, Any] | None) -> dict[str, Any]:
    """A seed from a path, a mapping, or None for the built-in demo seed."""
    if source is None:
        return demo_seed()
    if isinstance(source, dict):
        return source
    path = Path(source)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise SeedError(str(path), f"cannot read seed file ({exc.strerror})") from None
    return _parse(text, str(path))


def demo_seed() -> dict[str, Any]:
    """The built-in demo seed, composed of each API's own part (``<api>/demo_seed.yaml``)."""
    seed: dict[str, Any] = {}
    for api in ("conjur", "vault"):
        text = resources.files(f"cyberark_ops.devserver.{api}").joinpath("demo_seed.yaml").read_text("utf-8")
        seed[api] = _parse(text, f"{api}/demo_seed.yaml").get(api, {})
    return seed


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
        raise SeedError(name, "the top level must be a mapping with conjur / vault / devserver")
    return data
