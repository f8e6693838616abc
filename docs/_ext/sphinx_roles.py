"""Griffe extension: Sphinx cross-reference roles in docstrings shown as inline code.

The package's docstrings use Sphinx roles (``:class:`~airflow.sdk.Connection```), which
mkdocstrings renders literally. Linking them would make every role naming an object outside
this site (Airflow's, the standard library's) an unresolved-reference warning, so each becomes
inline code: ``~a.b.C`` shows ``C``, anything else its full dotted name.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|exc|data|obj|const):`(~?)([^`]+)`")


def _plain(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1]}`" if match.group(1) else f"`{target}`"


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _ROLE.sub(_plain, obj.docstring.value)
