"""The forms, and that Airflow's real masker masks every one of them once registered."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import unquote, unquote_plus

from airflow.sdk._shared.secrets_masker import _secrets_masker, redact

from cyberark_ops import scrub
from tests.scrub.conftest import CANARY

OLD_KEYS = {"raw", "quote", "quote_plus", "json", "repr", "base64", "base64url"}


def _unb64(text: str, *, urlsafe: bool = False) -> str:
    padded = text + "=" * (-len(text) % 4)
    return (base64.urlsafe_b64decode(padded) if urlsafe else base64.b64decode(padded)).decode()


def test_every_form_decodes_back_to_the_value(secret: str) -> None:
    found = scrub.leak_forms(secret, username="svc-airflow")
    assert set(found) >= OLD_KEYS
    assert found["raw"] == secret
    assert unquote(found["quote"]) == secret
    assert unquote(found["quote_sqlalchemy"]) == secret
    assert unquote_plus(found["quote_plus"]) == secret
    assert json.loads(f'"{found["json"]}"') == secret
    assert json.loads(f'"{found["json_unicode"]}"') == secret
    assert _unb64(found["base64"]) == secret
    assert _unb64(found["base64url"], urlsafe=True) == secret
    assert _unb64(found["basic"]) == f"svc-airflow:{secret}"
    assert not found["base64"].endswith("=")


def test_the_canary_forms_are_the_encodings_airflow_and_sqlalchemy_use() -> None:
    found = scrub.leak_forms(CANARY)
    assert found["quote"] == "p%40ss%20w%2Frd%2B%22%C3%A9%27%3C%26%3E%5C%209Zk"
    assert found["quote_sqlalchemy"] == "p%40ss w%2Frd+%22%C3%A9%27%3C%26%3E%5C 9Zk"
    assert found["json"] == "p@ss w/rd+\\\"\\u00e9'<&>\\\\ 9Zk"
    assert found["json_unicode"] == "p@ss w/rd+\\\"é'<&>\\\\ 9Zk"
    assert found["repr"] == repr(CANARY)[1:-1]
    assert "basic" not in found


def test_forms_are_distinct_raw_first_and_identical_ones_are_not_repeated() -> None:
    plain = "S3cr3t-canary-9f8e"
    assert scrub.forms(plain) == (plain, "UzNjcjN0LWNhbmFyeS05Zjhl")
    canary_forms = scrub.forms(CANARY, username="svc")
    assert canary_forms[0] == CANARY
    singles = {form for name, form in scrub.leak_forms(CANARY, username="svc").items() if ">" not in name}
    # raw, 3 quotings, 2 JSON, repr (the canary holds both quotes: one repr form), html, base64 (no + or /:
    # base64url is the same), basic and basic_url (svc:... has a +)
    assert len(singles) == 11
    assert len(canary_forms) == len(set(canary_forms)) > len(singles)  # and the compositions


def test_airflow_masks_every_registered_form_in_a_string(secret: str) -> None:
    registry = scrub.Registry()
    registry.register(secret, username="svc-airflow")
    patterns = _secrets_masker().patterns
    # Airflow recompiles its whole alternation on every call: it gets the bounded masked_forms
    # (raw, single escapes, lines), never the compositions, which the in-process engine masks.
    handed = scrub.masked_forms(secret, username="svc-airflow")
    assert secret in handed
    for name, form in enumerate(handed):
        assert len(form) >= 5  # a short line of a multi-line value is not handed over at all
        assert re.escape(form) in patterns, name
        masked = redact(f"connecting with {form} now")
        assert isinstance(masked, str)
        assert form not in masked, name
        assert "***" in masked, name
    registry.clear()


def test_airflow_masks_the_forms_at_any_depth_with_max_depth() -> None:
    scrub.register(CANARY)
    nested: object = [scrub.leak_forms(CANARY)["quote"]]
    for _ in range(10):
        nested = [nested]
    assert scrub.leak_forms(CANARY)["quote"] not in repr(redact(nested, max_depth=50))
