"""Loading seed files (YAML or JSON) that describe the emulated vault."""

from __future__ import annotations

import json
import os
import stat
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
    return _parse(_read_seed_file(path), str(path))


MAX_SEED_BYTES = 64 << 20
MAX_SEED_DEPTH = 64
"""Nesting a seed may have (a real one uses five or six levels)."""


def _read_seed_file(path: Path) -> str:
    """The seed's text: a regular file (after symlinks) of at most ``MAX_SEED_BYTES``, UTF-8.

    The client layer has the same rule in ``cyberark_ops.client.untrusted``; the emulator shares no
    code with the client (tests/test_layers.py), so a bug common to both cannot pass every test.
    """
    name = str(path)
    try:
        found = os.stat(path)
        if not stat.S_ISREG(found.st_mode):
            raise SeedError(name, "cannot read seed file (not a regular file)")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SeedError(name, "cannot read seed file (not a regular file)")
            data = os.read(fd, MAX_SEED_BYTES + 1)
            while len(data) <= MAX_SEED_BYTES:
                more = os.read(fd, MAX_SEED_BYTES + 1 - len(data))
                if not more:
                    break
                data += more
        finally:
            os.close(fd)
    except OSError as exc:
        raise SeedError(name, f"cannot read seed file ({exc.strerror})") from None
    if len(data) > MAX_SEED_BYTES:
        raise SeedError(name, f"seed file larger than {MAX_SEED_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SeedError(name, f"not UTF-8 text (byte {exc.start})") from None


def _nests_deeper(data: Any, limit: int) -> bool:
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        node, depth = todo.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        todo.extend((child, depth + 1) for child in children)
    return False


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
    except RecursionError:
        raise SeedError(name, f"nested deeper than {MAX_SEED_DEPTH} levels") from None
    if _nests_deeper(data, MAX_SEED_DEPTH):
        raise SeedError(name, f"nested deeper than {MAX_SEED_DEPTH} levels")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SeedError(name, "the top level must be a mapping with conjur / vault / cloud / devserver")
    return data
