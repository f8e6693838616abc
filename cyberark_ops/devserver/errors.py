"""Errors raised while loading or changing the dev server's state."""

from __future__ import annotations


class SeedError(ValueError):
    """A seed file or admin request is wrong; ``where`` is the path to the offending field."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem
