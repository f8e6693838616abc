"""The xdist order of ``tests/conftest.py``: spreading the units that mostly wait loses, duplicates
and reorders nothing else, for any number of units."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import _spread


@given(st.integers(0, 40), st.integers(0, 15), st.integers(0, 45))
def test_waiting_units_are_spread_within_the_span_and_every_unit_keeps_its_order(
    n_computing: int, n_waiting: int, among_first: int
) -> None:
    computing = [[f"c{i}"] for i in range(n_computing)]
    waiting = [[f"w{i}"] for i in range(n_waiting)]
    among_first = min(among_first, n_computing)
    order = _spread(computing, waiting, among_first=among_first)
    assert sorted(order) == sorted(computing + waiting)
    assert [unit for unit in order if unit[0].startswith("c")] == computing
    assert [unit for unit in order if unit[0].startswith("w")] == waiting
    if computing and waiting:
        assert order[0] == computing[0]
        last_waiting = max(i for i, unit in enumerate(order) if unit[0].startswith("w"))
        assert sum(1 for unit in order[:last_waiting] if unit[0].startswith("c")) <= max(among_first, 1)
