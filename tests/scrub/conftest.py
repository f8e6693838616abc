"""Secrets for the scrubbing tests, and a clean task registry around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from airflow.sdk._shared.secrets_masker import _secrets_masker

from cyberark_ops import scrub

CANARY = "p@ss w/rd+\"é'<&>\\ 9Zk"
SECRETS = {
    "canary": CANARY,
    "specials": "a@b:c/d%e+f\"g'h\\i&j#k?l=m;n o",
    "newline": "line-one\nline-two\ttab\r\x01ctl",
    "unicode": "пароль-密码-🔑-ÿ",
    "percent": "%41%%2B already%20quoted",
    "4kb": "".join(chr(33 + (i * 7919) % 94) for i in range(4096)) + " \n\\\"'é",
}


@pytest.fixture(params=sorted(SECRETS), ids=sorted(SECRETS))
def secret(request: pytest.FixtureRequest) -> str:
    return SECRETS[request.param]


@pytest.fixture(autouse=True)
def _clean_task_registry() -> Iterator[None]:
    scrub.clear()
    yield
    scrub.clear()


@pytest.fixture(autouse=True)
def _airflow_masker_restored() -> Iterator[None]:
    """Take the patterns a test added out of Airflow's masker again.

    Not needed for correctness (the masker cannot unregister, which is the point), but every
    ``mask_secret`` recompiles the whole alternation, and the 4 KB secret's forms make that slow.
    """
    masker = _secrets_masker()
    before = set(masker.patterns)
    replacer = masker.replacer
    yield
    masker.patterns = before
    masker.replacer = replacer
