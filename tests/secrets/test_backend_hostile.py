"""The secrets backend against hostile vault content, ids and settings.

Every failure of a lookup must reach Airflow as ``VaultLookupFailed``: anything else it logs at
DEBUG and answers from the next backend (a stale ``AIRFLOW_CONN_*``). Ids no vault path can hold
are "not found", so Airflow asks its other backends, as docs/secrets-backend.md says.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cyberark_ops import lookup_patterns
from cyberark_ops.client import ConfigurationError
from cyberark_ops.devserver import DevServer
from cyberark_ops.devserver.seed import demo_seed
from cyberark_ops.secrets import MAX_ID_LENGTH, VaultLookupFailed
from tests.client.conftest import HOST_LOGIN

from .test_backend import Vault

DEEP = "[" * 100_000 + "]" * 100_000
DEEP_CONNECTION = '{"conn_type": "postgres", "extra": ' + DEEP + "}"
STALE = "postgresql://stale_user:stale-pass@old-host:5432/db"


def _hostile_seed() -> dict[str, Any]:
    seed = copy.deepcopy(demo_seed())
    seed["conjur"]["variables"].append({"id": "airflow/dev/connections/warehouse", "value": DEEP_CONNECTION})
    seed["vault"]["accounts"].append(
        {
            "name": "deep-extra",
            "safe": "DB-Prod",
            "userName": "etl_user",
            "address": "127.0.0.1",
            "platformId": "PostgreSQL",
            "secret": "Deep-Extra-Pass1",
            "properties": {"Extra": DEEP},
        }
    )
    return seed


@pytest.fixture
def vault(make_server: Callable[..., DevServer], tmp_path: Path) -> Iterator[Vault]:
    yield Vault(make_server(_hostile_seed()), tmp_path)


# -- 12: no failure falls through silently ----------------------------------------------------------

AIRFLOW_LOOKUP = textwrap.dedent(
    """
    import json
    from airflow.models.connection import Connection
    try:
        conn = Connection.get_connection_from_secrets("warehouse")
        print(json.dumps({"served": [conn.login, conn.host]}))
    except BaseException as exc:
        print(json.dumps({"raised": type(exc).__name__, "message": str(exc)[:2000]}))
    """
)


def _through_airflow(vault: Vault, tmp_path: Path, script: str) -> dict[str, Any]:
    """What ``script`` prints last, run with this backend as Airflow's ``[secrets] backend`` and a
    stale ``AIRFLOW_CONN_WAREHOUSE`` next in Airflow's chain."""
    kwargs = {
        **vault.transport(),
        "api": "conjur",
        "login": HOST_LOGIN,
        "api_key_file": str(vault.key_file),
        "account": vault.info["conjur_account"],
        "env": "dev",
        "connections_path": "airflow/{env}/connections/{conn_id}",
    }
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__SECRETS__BACKEND": "cyberark_ops.secrets.CyberArkSecretsBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(kwargs),
        "AIRFLOW_CONN_WAREHOUSE": STALE,
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _airflow_honours_access_denied() -> bool:
    """Task SDKs before 1.2.2 lack ``AirflowSecretsBackendAccessDenied`` and fall through on every
    backend error (docs/secrets-backend.md): there no backend can stop a stale env connection."""
    try:
        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied  # noqa: F401
    except ImportError:
        return False
    return True


needs_access_denied = pytest.mark.skipif(
    not _airflow_honours_access_denied(),
    reason="this Airflow's task SDK (< 1.2.2) falls through on every backend error, as documented",
)


@pytest.mark.slow
@needs_access_denied
def test_a_deeply_nested_stored_connection_never_serves_the_stale_env_one(vault: Vault, tmp_path: Path) -> None:
    """Through Airflow's own chain ([secrets] backend, then the environment): the stale
    ``AIRFLOW_CONN_WAREHOUSE`` must not be served when the vault's value cannot be parsed."""
    outcome = _through_airflow(vault, tmp_path, AIRFLOW_LOOKUP)
    assert "served" not in outcome, f"the stale connection was served: {outcome}"
    assert outcome["raised"] == "VaultLookupFailed"
    assert "'warehouse'" in outcome["message"]
    assert "airflow/dev/connections/warehouse" in outcome["message"]
    assert "nested deeper than" in outcome["message"]


OUT_OF_MEMORY_LOOKUP = textwrap.dedent(
    """
    import json, resource
    from airflow.models.connection import Connection
    Connection.get_connection_from_secrets("demo_postgres")  # imports, TLS and token: all warm
    used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + (4 << 20), resource.RLIM_INFINITY))
    try:
        conn = Connection.get_connection_from_secrets("warehouse")
        outcome = {"served": [conn.login, conn.host]}
    except BaseException as exc:
        outcome = {"raised": type(exc).__name__, "message": str(exc)[:2000]}
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print(json.dumps(outcome))
    """
)


@pytest.mark.slow
@needs_access_denied
def test_running_out_of_memory_during_a_lookup_never_serves_the_stale_env_one(vault: Vault, tmp_path: Path) -> None:
    """A real ``MemoryError`` (the process's address space capped a few MB above what it uses, then a
    stored connection of 60,000 extras to parse) reaches Airflow as ``VaultLookupFailed``."""
    extras = {f"k{i}": f"v{i}" for i in range(60_000)}
    big = json.dumps({"conn_type": "postgres", "login": "vault_user", "extra": extras})
    vault.server.app.conjur.write("airflow/dev/connections/warehouse", big.encode())
    outcome = _through_airflow(vault, tmp_path, OUT_OF_MEMORY_LOOKUP)
    assert "served" not in outcome, f"a connection was served: {outcome}"
    assert outcome["raised"] == "VaultLookupFailed", outcome
    assert "'warehouse'" in outcome["message"]
    assert "MemoryError" in outcome["message"]


def test_a_deeply_nested_extra_property_of_a_ccp_account_fails_the_lookup(vault: Vault) -> None:
    with pytest.raises(VaultLookupFailed, match="Extra property is not valid JSON") as raised:
        vault.ccp().get_conn_value("deep-extra")
    assert "Deep-Extra-Pass1" not in str(raised.value)
    assert "'deep-extra'" in str(raised.value)


def test_a_vault_failure_is_vault_lookup_failed_unless_falling_through_is_asked_for(vault: Vault) -> None:
    backend, falling_through = vault.conjur(), vault.conjur(fall_through_on_error=True)
    vault.server.stop()
    with pytest.raises(VaultLookupFailed, match="'demo_postgres'"):
        backend.get_conn_value("demo_postgres")
    assert falling_through.get_conn_value("demo_postgres") is None


# -- 14: ids no vault path can hold are not found -----------------------------------------------------

UNLOOKABLE = ["warehouse ", " warehouse", "../connections/x", ".", "..", "a/./b", "\udcff", "x" * (MAX_ID_LENGTH + 1)]


@pytest.mark.parametrize("conn_id", UNLOOKABLE, ids=repr)
def test_ids_no_vault_path_can_hold_are_not_found(vault: Vault, conn_id: str) -> None:
    for backend in (vault.conjur(), vault.ccp(), vault.pvwa(conn_type="postgres")):
        assert backend.get_conn_value(conn_id) is None
        assert backend.get_variable(conn_id) is None
    assert vault.calls() == []


def test_a_huge_id_gives_a_short_message(vault: Vault) -> None:
    """A 100 KB id gave a 200 KB message; the id is cut wherever it is echoed."""
    backend = vault.conjur(connections_path="airflow/{env}/missing-section/{conn_id}")
    vault.server.stop()
    with pytest.raises(VaultLookupFailed) as raised:
        backend.get_conn_value("w" * MAX_ID_LENGTH)
    assert len(str(raised.value)) < 1500
    assert f"({MAX_ID_LENGTH} characters)" in str(raised.value)


@pytest.mark.parametrize("env", ["..", ".", " dev", "dev ", "a\u0085b"], ids=repr)
def test_an_env_no_path_can_hold_is_refused_at_start_up(vault: Vault, env: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        vault.conjur(env=env)
    assert raised.value.field == "env"


def test_a_template_with_a_dot_dot_segment_is_refused_at_start_up(vault: Vault) -> None:
    with pytest.raises(ConfigurationError) as raised:
        vault.conjur(connections_path="airflow/../{conn_id}")
    assert raised.value.field == "connections_path"


# -- 15: patterns match in linear time -------------------------------------------------------------

BACKTRACKING = r"^([a-z0-9]+_?)+$"


def test_a_backtracking_pattern_runs_on_re2_where_installed(vault: Vault) -> None:
    pytest.importorskip("re2")
    backend = vault.conjur(connections_lookup_pattern=BACKTRACKING)
    # 60 characters: at 4.9 s for 27 and doubling per character, Python's re would never finish.
    assert backend.get_conn_value("a" * 60 + "!") is None
    assert vault.calls() == []
    assert backend.get_conn_value("demo_sqlite")


def test_without_re2_a_backtracking_pattern_is_refused_at_start_up(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lookup_patterns, "_re2", lambda: None)
    with pytest.raises(ConfigurationError, match="repetition inside a repetition") as raised:
        vault.conjur(connections_lookup_pattern=BACKTRACKING)
    assert raised.value.field == "connections_lookup_pattern"
    for pattern in (r"(foo|bar)+", r"((a)\2)+", r"(?:x+)*y"):
        with pytest.raises(ConfigurationError):
            vault.conjur(variables_lookup_pattern=pattern)
    backend = vault.conjur(connections_lookup_pattern=r"^demo_[a-z0-9_]+$")
    assert backend.get_conn_value("demo_sqlite")


def test_with_re2_a_pattern_it_cannot_run_is_refused_at_start_up(vault: Vault) -> None:
    pytest.importorskip("re2")
    with pytest.raises(ConfigurationError, match="linear time") as raised:
        vault.conjur(connections_lookup_pattern=r"(a)\1")
    assert raised.value.field == "connections_lookup_pattern"


REGEX_PIECES = st.sampled_from(
    ["a", "b", "(", ")", "(?:", "|", "*", "+", "?", "{2}", "{1,3}", "[a-z]", "\\1", "\\d", "^", "$", "(?=", "]", "{"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(REGEX_PIECES, max_size=12), use_re2=st.booleans())
def test_a_pattern_is_compiled_or_refused_with_the_typed_error(
    pieces: list[str], use_re2: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not use_re2:
        monkeypatch.setattr(lookup_patterns, "_re2", lambda: None)
    pattern = "".join(pieces)
    try:
        matcher = lookup_patterns.lookup_pattern({"p": pattern}, "p")
    except ConfigurationError as exc:
        assert exc.field == "p"
    else:
        assert pattern == "" or matcher is not None
    finally:
        monkeypatch.undo()


@settings(max_examples=200, deadline=None)
@given(pattern=st.text(max_size=30))
def test_any_text_as_a_pattern_is_compiled_or_refused_with_the_typed_error(pattern: str) -> None:
    try:
        lookup_patterns.lookup_pattern({"p": pattern}, "p")
    except ConfigurationError as exc:
        assert exc.field == "p"
