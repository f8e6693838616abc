"""Registration: length rules, idempotence (measured on Airflow's masker), clearing, safety."""

from __future__ import annotations

import copy
import gc
import logging
import pickle
import re
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk._shared.secrets_masker import _secrets_masker

from cyberark_ops import scrub
from cyberark_ops.client import ConfigurationError, CyberArkError
from tests.scrub.conftest import CANARY


def _patterns_of(value: str, username: str | None = None) -> set[str]:
    return {re.escape(form) for form in scrub.masked_forms(value, username=username)}


def _forget_in_airflow(patterns: set[str]) -> None:
    """Take patterns out of Airflow's masker, to see whether a registration puts them back."""
    masker = _secrets_masker()
    masker.patterns -= patterns
    masker.replacer = re.compile("|".join(masker.patterns)) if masker.patterns else None


def test_a_value_under_the_minimum_length_is_refused_without_showing_it() -> None:
    registry = scrub.Registry()
    with pytest.raises(scrub.SecretTooShort) as caught:
        registry.register("x7#q")
    error = caught.value
    assert isinstance(error, ConfigurationError)
    assert isinstance(error, CyberArkError)
    assert "x7#q" not in str(error)
    assert "x7#q" not in repr(error)
    assert "4 characters" in str(error)
    assert "[logging] min_length_masked_secret" in str(error)
    assert error.field == "[logging] min_length_masked_secret"
    assert len(registry) == 0
    assert registry.scrub("a x7#q b") == "a x7#q b"


def test_allow_short_registers_but_never_searches_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 24: a value shorter than the setting is never searched for, in logs or in data
    (replacing ``1`` or ``prod`` corrupts values that hold no secret)."""
    registry = scrub.Registry()
    before = set(_secrets_masker().patterns)
    with caplog.at_level(logging.WARNING, logger="cyberark_ops.scrub"):
        registry.register("k9!z", allow_short=True)
    assert len(registry) == 1
    assert registry.scrub(["a k9!z b", b"k9!z"]) == ["a k9!z b", b"k9!z"]
    assert re.escape("k9!z") not in _secrets_masker().patterns - before
    [record] = caplog.records
    assert "k9!z" not in record.getMessage()
    assert "will not mask it in logs" in record.getMessage()
    assert "min_length_masked_secret" in record.getMessage()
    registry.clear()


def test_empty_and_non_text_values_are_refused() -> None:
    registry = scrub.Registry()
    with pytest.raises(ConfigurationError):
        registry.register("", allow_short=True)
    with pytest.raises(ConfigurationError) as caught:
        registry.register("bad\ud800surrogate")
    assert "surrogate" not in str(caught.value)
    assert caught.value.__context__ is None
    with pytest.raises(TypeError):
        registry.register(b"bytes-secret")  # type: ignore[arg-type]


def test_registering_the_same_value_twice_does_not_call_the_masker_again() -> None:
    value = "idempotent-Δ-secret/+1"
    ours = _patterns_of(value, "svc")
    first = scrub.Registry()
    first.register(value, username="svc")
    assert ours <= _secrets_masker().patterns
    _forget_in_airflow(ours)
    first.register(value, username="svc")
    assert not ours & _secrets_masker().patterns  # no second mask_secret call
    # Control: a new registry does call the masker, so the measurement can see a call.
    second = scrub.Registry()
    second.register(value, username="svc")
    assert ours <= _secrets_masker().patterns
    # A username adds only the HTTP Basic form.
    _forget_in_airflow(ours)
    second.register(value, username="other")
    assert _secrets_masker().patterns & ours == set()
    assert re.escape(scrub.leak_forms(value, username="other")["basic"]) in _secrets_masker().patterns
    first.clear()
    second.clear()


def test_the_matcher_is_rebuilt_only_when_registration_changes() -> None:
    registry = scrub.Registry()
    registry.register("first-secret-value")
    assert registry.scrub("first-secret-value") == "***"
    matcher = registry._matcher
    registry.register("first-secret-value")
    registry.scrub("x")
    assert registry._matcher is matcher
    registry.register("second-secret-value")
    assert registry.scrub("second-secret-value first-secret-value") == "*** ***"
    assert registry._matcher is not matcher
    registry.clear()


def test_retained_values_reuse_the_forms_and_matcher_built_for_the_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a supervised task the output hooks search the same registry as ``scrub``: a value's
    forms and matcher are built once, and what a scope drops stays searched for the output only."""
    from cyberark_ops.redaction import registry as engine

    built: list[str] = []
    forms = engine.forms

    def counting(value: str, **kwargs: Any) -> tuple[str, ...]:
        built.append(value)
        return forms(value, **kwargs)

    monkeypatch.setattr(engine, "forms", counting)
    registry = scrub.Registry()
    registry.retain_after_scopes()
    with registry.task_scope():
        registry.register("retained-secret-value")
        assert registry.scrub("retained-secret-value") == "***"
        matcher = registry.matcher()
        assert registry.retained_matcher() is matcher, "one matcher while nothing was dropped"
    assert registry.scrub("retained-secret-value") == "retained-secret-value", "return values: live values only"
    assert registry.scrub("retained-secret-value", retained=True) == "***"
    assert registry.retained_matcher() is matcher, "the scope's matcher keeps serving the output"
    with registry.task_scope():
        registry.register("retained-secret-value")  # the next task in the process fetches it again
        assert registry.scrub("retained-secret-value") == "***"
    assert built == ["retained-secret-value"]
    registry.clear()
    assert registry.scrub("retained-secret-value", retained=True) == "***", "the output hooks keep it"
    registry.clear(retained=True)
    assert registry.scrub("retained-secret-value", retained=True) == "retained-secret-value"


def test_without_retaining_a_scope_drops_the_value_for_the_output_too() -> None:
    registry = scrub.Registry()
    with registry.task_scope():
        registry.register("dropped-secret-value")
    assert registry.scrub("dropped-secret-value", retained=True) == "dropped-secret-value"


def _reachable(root: object) -> Iterator[Any]:
    seen: set[int] = set()
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        yield obj
        todo.extend(gc.get_referents(obj))


def _in_re_caches(forms: tuple[str, ...]) -> list[str]:
    """Forms found in the keys of the ``re`` module's pattern caches (``_cache2`` exists from 3.12)."""
    keys = [*re._cache, *getattr(re, "_cache2", {})]  # type: ignore[attr-defined]
    texts = [p.decode("utf-8", "replace") if isinstance(p, bytes) else p for key in keys for p in key[1:2]]
    return [form for form in forms if any(form in t or re.escape(form) in t for t in texts)]


def test_the_patterns_never_enter_the_re_module_cache() -> None:
    """Compiled outside ``re``'s cache, so clearing needs no ``re.purge()`` (which would make every
    library recompile its patterns); mask=False: Airflow's masker compiles its own with re.compile."""
    value = "".join(["never", "-cached-", "7Qz/+é"])
    found = scrub.forms(value, username="svc")
    registry = scrub.Registry(mask=False)
    registry.register(value, username="svc")
    assert registry.scrub(["a", value, value.encode()]) == ["a", "***", b"***"]  # both patterns compiled
    assert registry.scrub(f"<{value}>") == "<***>"
    assert _in_re_caches(found) == []
    re.compile(re.escape(found[1]))
    assert _in_re_caches(found) == [found[1]]  # control: the check sees what re.compile caches
    re.purge()
    registry.clear()


def test_clear_leaves_no_reference_to_any_form() -> None:
    value = "".join(["clear", "-me-", "now-7Qz/+é"])  # built at run time: not a constant of this module
    registry = scrub.Registry()
    registry.register(value, username="svc")
    assert registry.scrub({"k": [value]}) == {"k": ["***"]}
    found = scrub.forms(value, username="svc")
    holders = [o for o in _reachable(registry) if isinstance(o, (str, bytes)) and any(f in str(o) for f in found)]
    assert holders  # control: before clear() the registry does hold them
    registry.clear()
    for obj in _reachable(registry):
        if isinstance(obj, (str, bytes)):
            text = obj.decode("utf-8", "replace") if isinstance(obj, bytes) else obj
            assert not any(form in text for form in found)
    still = {id(obj) for obj in _reachable(registry)}
    assert not [r for r in gc.get_referrers(value) if id(r) in still]
    assert len(registry) == 0
    assert registry.scrub(value) == value


def test_task_scope_clears_on_success_on_failure_and_only_at_the_outermost_scope() -> None:
    with scrub.task_scope() as registry:
        scrub.register("scoped-secret-one")
        with scrub.task_scope():
            pass
        assert scrub.scrub("scoped-secret-one") == "***"  # the inner scope did not clear
    assert len(registry) == 0
    assert scrub.scrub("scoped-secret-one") == "scoped-secret-one"
    with pytest.raises(RuntimeError), scrub.task_scope():
        scrub.register("scoped-secret-two")
        raise RuntimeError("task failed")
    assert len(scrub.registry()) == 0


def test_the_registry_has_a_safe_repr_and_cannot_be_pickled_or_copied() -> None:
    registry = scrub.Registry()
    registry.register(CANARY, username="svc")
    assert CANARY not in repr(registry)
    assert repr(registry) == f"<Registry: 1 secrets, {len(scrub.forms(CANARY, username='svc'))} forms>"
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError) as caught:
            attempt(registry)
        assert CANARY not in str(caught.value)
    registry.clear()
