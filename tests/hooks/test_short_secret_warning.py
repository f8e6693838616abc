"""Reading a ``cyberark`` connection does not trip Airflow's "Skipping masking for a secret as
it's too short" warning for its non-secret extras (``api="ccp"``), and a short real secret still
does. The flag is Airflow's own once-per-process switch of that warning."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cyberark_ops import CyberArkHook
from cyberark_ops._compat import _masker_classes

CCP = {"api": "ccp", "app_id": "AirflowProd", "auth_method": "app_id", "connect_timeout": "10"}


def _warned() -> bool:
    return any(cls._has_warned_short_secret for cls in _masker_classes())


@pytest.fixture(autouse=True)
def _not_warned_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    classes = _masker_classes()
    assert classes, "Airflow's SecretsMasker was not found"
    for cls in classes:
        monkeypatch.setattr(cls, "_has_warned_short_secret", False)


def _read(monkeypatch: pytest.MonkeyPatch, **conn: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SHORT_EXTRAS", json.dumps({"conn_type": "cyberark", **conn}))
    assert CyberArkHook("short_extras").settings.api in ("ccp", "pvwa")


def test_short_non_secret_extras_do_not_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    _read(monkeypatch, host="https://ccp.example.com", extra=CCP)
    assert not _warned()


def test_a_short_password_still_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    _read(monkeypatch, host="https://pvwa.example.com", login="svc", password="abc", extra={"api": "pvwa"})
    assert _warned()
