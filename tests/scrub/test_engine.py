"""Issue 24, the engine: short and punctuation-only values never searched, composed forms masked,
scopes that own what they register, Counter rebuilt right, values above the size cap."""

from __future__ import annotations

import json
import logging
import pickle
import re
from collections import Counter

import pytest
from airflow.sdk._shared.secrets_masker import _secrets_masker

from cyberark_ops import scrub
from cyberark_ops.fetch import register_fetched
from tests.scrub.conftest import CANARY

XCOM = {"output": "s3://prod-data/2021/part-1.parquet", "rows": "100"}


def _no_form_of(text: str, secret: str, username: str | None = None) -> list[str]:
    return [name for name, form in scrub.leak_forms(secret, username=username).items() if form in text]


# --- corruption (false positives) -----------------------------------------------------------


def test_short_variables_served_by_the_backend_never_corrupt_a_later_xcom() -> None:
    register_fetched("prod", "the variable env_name")
    register_fetched("1", "the variable batch_size")
    result = scrub.scrub(XCOM)
    assert result == {"output": "s3://prod-data/2021/part-1.parquet", "rows": "100"}
    assert scrub.scrub(json.dumps(XCOM)) == json.dumps(XCOM)
    assert len(scrub.registry()) == 2


def test_the_short_value_warning_says_it_is_not_searched_without_the_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        scrub.register("pr0d", allow_short=True)
        scrub.register("pr0d", allow_short=True)  # once per value
    [record] = [r for r in caplog.records if r.name == "cyberark_ops.scrub"]
    assert "pr0d" not in record.getMessage()
    assert "neither scrubbed from data nor masked" in record.getMessage()


def test_a_value_of_only_whitespace_and_punctuation_is_never_searched(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        scrub.register("{-}--  ,;", allow_short=True)
    text = 'a = {-}--  ,; "x"'
    assert scrub.scrub(text) == text
    assert [r for r in caplog.records if "whitespace and punctuation" in r.getMessage()]
    assert all("{-}--" not in r.getMessage() for r in caplog.records)


def test_pretty_printed_json_registers_no_brace_lines() -> None:
    connection = json.dumps({"conn_type": "postgres", "password": "pw-Kq83-xyz", "port": 5432}, indent=2)
    scrub.register(connection)
    unrelated = {"doc": "{\n}", "list": ["{", "}", "  },"]}
    assert scrub.scrub(unrelated) == unrelated
    assert scrub.scrub('  "password": "pw-Kq83-xyz",') == "***"  # a line that qualifies is still masked


def test_a_secret_ending_in_a_line_1_does_not_rewrite_version_numbers() -> None:
    scrub.register("token-Vb7hQ2\n1")
    assert scrub.scrub("version 1.10 released 2021") == "version 1.10 released 2021"
    assert scrub.scrub("token-Vb7hQ2\n1") == "***"
    assert scrub.scrub("line: token-Vb7hQ2") == "line: ***"


def test_counter_is_rebuilt_with_its_counts() -> None:
    scrub.register(CANARY)
    counts = Counter({CANARY: 3, "clean": 2})
    result = scrub.scrub(counts)
    assert type(result) is Counter
    assert result == Counter({"***": 3, "clean": 2})
    assert counts[CANARY] == 3


# --- composed forms (false negatives) --------------------------------------------------------


@pytest.mark.parametrize("secret", [CANARY, "it's-a-Secret-9\t🔑 {{ ds }} $HOME `x` \\1 %41"])
def test_common_sql_output_line_three_escapes_deep(secret: str) -> None:
    scrub.register(secret)
    row = (1, json.dumps({"password": secret}))
    line = json.dumps({"event": f"Operator output is: {[row]!r}"})
    assert _no_form_of(line, secret) != []  # control: some composed form is in the line
    result = scrub.scrub(line)
    assert "***" in result
    assert _no_form_of(result, secret) == []
    decoded = json.loads(result)["event"]
    assert secret not in decoded and json.dumps(secret)[1:-1] not in decoded


def test_percent_r_of_a_json_payload_escaped_twice() -> None:
    scrub.register(CANARY)
    line = "payload %r" % json.dumps({"password": CANARY})  # noqa: UP031 - as logging formats it
    assert scrub.scrub(line) == 'payload \'{"password": "***"}\''


def test_a_quote_escaped_by_repr_inside_a_longer_string_with_a_double_quote() -> None:
    secret = "it's-a-Secret-9"
    scrub.register(secret)
    text = repr(f'the "value" is {secret}')
    assert "it\\'s-a-Secret-9" in text  # control: Python wrote its ' as \'
    assert scrub.scrub(text) == "'the \"value\" is ***'"
    assert scrub.leak_forms(secret)["repr_sq"] == "it\\'s-a-Secret-9"
    assert scrub.leak_forms(secret)["repr"] == secret


def test_an_exception_message_holding_a_repr_logged_with_percent_r() -> None:
    secret = "it's-a-Secret-9\t"
    scrub.register(secret)
    error = ValueError(f'bad password {secret!r} for "svc"')
    line = json.dumps({"event": "callback failed: %r" % error})  # noqa: UP031 - as logging formats it
    assert "it\\\\'s" in line  # control: three escapes deep (repr in ", repr in ', JSON)
    clean = json.dumps({"event": "callback failed: %r" % ValueError('bad password "***" for "svc"')})  # noqa: UP031 - as logging formats it
    assert scrub.scrub(line) == clean
    assert _no_form_of(scrub.scrub(line), secret) == []


def test_a_line_of_a_multi_line_secret_escaped_twice_inside_a_longer_string() -> None:
    """A PEM-like value is logged one line at a time; each line goes through repr, then JSON."""
    key = "-----BEGIN KEY-----\nMIIEv'Qu\\otes\"9f+/x\nsecond-line-é-Zk27\n-----END KEY-----"
    scrub.register(key)
    for number, line in enumerate(key.splitlines(), 1):
        logged = json.dumps({"event": f'key line {number}: {line!r} ("quoted")', "level": "info"})
        assert line not in scrub.scrub(logged), number
        assert json.dumps(repr(line))[1:-1] not in scrub.scrub(logged)
    names = [name for name in scrub.leak_forms(key) if name.startswith("line 2>")]
    assert "line 2>repr_sq>json" in names and "line 2>json>repr_sq>json" in names
    braced = scrub.leak_forms("{\n  pw-'x\"y-Kq83\n}")
    assert "line 2>json>repr_sq" in braced
    assert not [name for name in braced if name.startswith(("line 1", "line 3"))], "a brace line searched"


def test_compositions_are_named_and_deduplicated() -> None:
    found = scrub.leak_forms(CANARY)
    assert found["json>repr_sq>json"] == json.dumps(repr('"' + json.dumps(CANARY)[1:-1])[2:-1])[1:-1]
    assert "quote>quote" in found
    texts = [form for name, form in found.items() if ">" in name]
    assert len(texts) == len(set(texts))
    assert not set(texts) & {form for name, form in found.items() if ">" not in name}
    plain = scrub.leak_forms("S3cr3t-canary-9f8e")
    assert not [name for name in plain if ">" in name]  # every escape is identity on it


def test_airflow_gets_the_single_escapes_never_the_compositions() -> None:
    before = set(_secrets_masker().patterns)
    scrub.register(CANARY)
    added = _secrets_masker().patterns - before
    found = scrub.leak_forms(CANARY)
    assert re.escape(found["json"]) in added
    assert re.escape(found["json>repr_sq"]) not in added
    assert scrub.scrub(found["json>repr_sq>json"]) == "***"  # the engine masks it


def test_overlapping_forms_leftmost_longest_then_non_overlapping() -> None:
    registry = scrub.Registry(mask=False)
    registry.register("abcde-12345")
    registry.register("12345-vwxyz")
    registry.register("abcde-12345-vwx")
    assert registry.scrub("abcde-12345-vwxyz|12345-vwxyz") == "***yz|***"


# --- scopes ---------------------------------------------------------------------------------


def test_leaving_a_scope_keeps_what_was_registered_outside_every_scope() -> None:
    scrub.register("backend-Var-value-77")
    with scrub.task_scope():
        scrub.register("task-secret-Value-1")
    assert scrub.scrub("backend-Var-value-77 task-secret-Value-1") == "*** task-secret-Value-1"


def test_leaving_an_inner_scope_drops_nothing_an_outer_scope_holds() -> None:
    with scrub.task_scope():
        scrub.register("outer-secret-Value-1")
        with scrub.task_scope():
            scrub.register("inner-secret-Value-2")
            scrub.register("outer-secret-Value-1")
        assert scrub.scrub("outer-secret-Value-1 inner-secret-Value-2") == "*** ***"
    assert len(scrub.registry()) == 0


# --- size cap, safety ------------------------------------------------------------------------


def test_a_value_above_the_size_cap_is_matched_by_anchors_and_not_handed_to_airflow() -> None:
    from cyberark_ops.redaction.forms import SIZE_CAP

    big = "".join(chr(48 + (i * 7919) % 75) for i in range(SIZE_CAP + 10)) + "'\"é"
    before = set(_secrets_masker().patterns)
    scrub.register(big)
    assert _secrets_masker().patterns == before
    assert scrub.masked_forms(big) == ()
    assert scrub.scrub(f"<{big}>") == "<***>"
    assert scrub.scrub(f"[{json.dumps(big)}]") == '["***"]'
    assert scrub.scrub([big.encode()]) == [b"***"]
    # an anchor (the first KB) without the rest of the value is not a form; what follows it still is
    scrub.register("short-secret-Xy9")
    partial = big[:2000] + " short-secret-Xy9"
    assert scrub.scrub(partial) == big[:2000] + " ***"


def test_a_long_value_under_the_composition_limit_gets_its_compositions() -> None:
    from cyberark_ops.redaction.forms import COMPOSE_LIMIT

    long = ("'a\"b\\c-é" * (COMPOSE_LIMIT // 10))[: COMPOSE_LIMIT - 1]
    scrub.register(long)
    text = json.dumps(repr(json.dumps(long)))
    assert scrub.scrub(text) == json.dumps(repr('"***"'))


def test_the_matcher_refuses_pickling_and_shows_no_form() -> None:
    from cyberark_ops.redaction import Matcher

    matcher = Matcher([CANARY])
    assert CANARY not in repr(matcher)
    with pytest.raises(TypeError):
        pickle.dumps(matcher)


def test_a_shared_prefix_without_the_form_keeps_the_quick_path() -> None:
    """The prefilter finds where a form can start; only a whole form makes a value "present"."""
    scrub.register("conne-Secret-77")
    value = [("connect to db", "x"), {"connection": ["conne-ction"]}]
    assert scrub.scrub(value) is value
    assert scrub.registry().matcher().occurs(b"a conne-ction") is False  # type: ignore[union-attr]
    assert scrub.registry().matcher().occurs(b"a conne-Secret-77") is True  # type: ignore[union-attr]
