"""The prefilter's two searchers (Hyperscan for many prefixes over large data, the DFA otherwise)
find the same candidates, and a scan dense with candidates falls back instead of slowing down."""

from __future__ import annotations

import pickle
import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyberark_ops.redaction import Matcher, prefilter
from cyberark_ops.redaction.prefilter import PACKED_LIMIT, VECTOR_MIN_BYTES, Prefilter

ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789\"'\\%&=+/ \xc3\xa9"

needs_hyperscan = pytest.mark.skipif(
    prefilter.hyperscan is None, reason="hyperscan has no wheel for this platform (the DFA alone is used)"
)


def _dfa_starts(prefixes: list[bytes], data: bytes) -> list[int]:
    """The reference: every overlapping occurrence, by brute force."""
    return sorted({at for prefix in prefixes for at in range(len(data)) if data.startswith(prefix, at)})


def _many_prefixes(rnd: random.Random, count: int, alphabet: bytes) -> list[bytes]:
    return list({bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 5))) for _ in range(count)})


@needs_hyperscan
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), count=st.integers(PACKED_LIMIT + 1, 400))
def test_both_searchers_find_the_same_starts(seed: int, count: int) -> None:
    rnd = random.Random(seed)
    prefixes = [p for p in _many_prefixes(rnd, count, ALPHABET) if len(p) >= 3]
    if len(prefixes) <= PACKED_LIMIT:
        prefixes += [b"zz%03d" % i for i in range(PACKED_LIMIT + 1)]
    noise = [bytes(rnd.randrange(256) for _ in range(20)) for _ in range(200)]
    sample = b"".join(rnd.choice(prefixes) if rnd.random() < 0.3 else piece for piece in noise)
    data = (b"x" * VECTOR_MIN_BYTES) + sample
    search = Prefilter(prefixes)
    starts = search.starts(data)
    assert search._vector is not None, "the large-data searcher was not used"
    assert starts == search.starts(bytearray(data)) == search.starts(memoryview(data))
    expected = [at + VECTOR_MIN_BYTES for at in _dfa_starts(prefixes, sample)]
    assert [at for at in starts if at >= VECTOR_MIN_BYTES] == expected


def test_a_prefix_holding_a_nul_byte_is_searched_whole() -> None:
    """Hyperscan's binding would cut it at the NUL; the DFA searches it instead."""
    prefixes = [b"ab\x00cd"] + [b"zz%03d" % i for i in range(PACKED_LIMIT + 1)]
    data = b"ab" * VECTOR_MIN_BYTES + b"ab\x00cd"
    assert Prefilter(prefixes).starts(data) == [2 * VECTOR_MIN_BYTES]


@needs_hyperscan
def test_data_dense_with_candidates_falls_back_to_the_dfa_with_the_same_answer() -> None:
    prefixes = [b"ab%03d" % i for i in range(200)] + [b"a"]
    data = b"a" * (4 * VECTOR_MIN_BYTES)
    search = Prefilter(prefixes)
    assert search._vector_starts(data) is None
    assert search.starts(data) == list(range(len(data)))


@needs_hyperscan
def test_threads_scan_one_matcher_at_once() -> None:
    rnd = random.Random(7)
    secrets = ["".join(rnd.choice("abcdefXYZ!'\"") for _ in range(16)) + f"-{i}" for i in range(300)]
    matcher = Matcher(secrets)
    data = (b"filler line of a log\n" * 20_000) + secrets[123].encode() + b"\n" + b"tail\n" * 1000
    expected = matcher.replace(data)
    assert expected is not None and secrets[123].encode() not in expected
    results: list[bytes | None] = []
    failures: list[BaseException] = []

    def scan() -> None:
        try:
            for _ in range(5):
                results.append(matcher.replace(data))
        except BaseException as error:
            failures.append(error)

    workers = [threading.Thread(target=scan) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not failures
    assert results == [expected] * 20


def test_the_prefilter_refuses_pickling() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Prefilter([b"abcde"]))
