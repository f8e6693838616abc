"""Airflow multi-team in the secrets backend: a team's namespace, its own identity, no guessing.

The isolation property is proved over the backend's own ``lookup_paths`` (what every lookup
reads, in order) and the references' canonical form (what the vault is asked for); the lookups
themselves run against the dev server, whose audit says which identity read which path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cyberark_ops.client import ConfigurationError
from cyberark_ops.devserver import DevServer
from cyberark_ops.secrets import TEAM_NAME, CyberArkSecretsBackend, VaultLookupFailed

TEAM_A_KEY = "3tj5q1d0cbkqg1m7n9e9x7d1rj7t8b7a1xq2v4z6c8f0h3k5m9p2w4"
TEAM_B_KEY = "1vx0m5s8d2ktq9n4b7a3e6r1w0y5u8i2o4p7l3k6j9h2g5f8d1s4a7"
GLOBAL_KEY = "2hp7c4x1z8v5b2n9m6l3k0j7h4g1f8d5s2a9q6w3e0r7t4y1u8i5o2"
SEED: dict[str, Any] = {
    "conjur": {
        "account": "demo",
        "hosts": [
            {"id": "airflow/team_a", "api_key": TEAM_A_KEY},
            {"id": "airflow/team_b", "api_key": TEAM_B_KEY},
            {"id": "airflow/global", "api_key": GLOBAL_KEY},
        ],
        "variables": [
            {"id": "airflow/teams/team_a/connections/db_a", "value": "postgresql://a:Team-A-Passw0rd@db-a/a"},
            {"id": "airflow/teams/team_b/connections/db_b", "value": "postgresql://b:Team-B-Passw0rd@db-b/b"},
            {"id": "airflow/teams/team_a/variables/bucket", "value": "team-a-bucket"},
            {"id": "airflow/teams/team_b/variables/bucket", "value": "team-b-bucket"},
            {"id": "airflow/shared/connections/smtp", "value": "smtp://mail:Shared-Passw0rd@mail/x"},
        ],
        "permits": [
            {"role": "host:airflow/team_a", "privileges": ["read", "execute"], "resources": ["airflow/teams/team_a/*"]},
            {"role": "host:airflow/team_b", "privileges": ["read", "execute"], "resources": ["airflow/teams/team_b/*"]},
            {"role": "host:airflow/team_a", "privileges": ["read", "execute"], "resources": ["airflow/shared/*"]},
            {"role": "host:airflow/global", "privileges": ["read", "execute"], "resources": ["airflow/shared/*"]},
        ],
    }
}
TEAM_TEMPLATES = {
    "connections_path": "airflow/teams/{team}/connections/{conn_id}",
    "variables_path": "airflow/teams/{team}/variables/{variable}",
    "global_connections_path": "airflow/shared/connections/{conn_id}",
}


class Vault:
    def __init__(self, server: DevServer, tmp_path: Path) -> None:
        self.server = server
        self.info = server.info()
        self.keys = {}
        for name, key in (("team_a", TEAM_A_KEY), ("team_b", TEAM_B_KEY), ("global", GLOBAL_KEY)):
            path = tmp_path / f"{name}.key"
            path.write_text(key)
            self.keys[name] = str(path)

    def backend(self, **kwargs: Any) -> CyberArkSecretsBackend:
        return CyberArkSecretsBackend(
            url=self.info["url"],
            ca_bundle=self.info["ca_cert"],
            api="conjur",
            account="demo",
            read_timeout=5,
            max_retries=1,
            **{
                "login": "host/airflow/global",
                "api_key_file": self.keys["global"],
                **TEAM_TEMPLATES,
                "teams": {
                    "team_a": {"login": "host/airflow/team_a", "api_key_file": self.keys["team_a"]},
                    "team_b": {"login": "host/airflow/team_b", "api_key_file": self.keys["team_b"]},
                },
                **kwargs,
            },
        )

    def reads(self, since: int = 0) -> list[tuple[str, str, int]]:
        """(identity, object, status) of every retrieve since ``since``."""
        return [
            (str(e["identity"]), str(e["object"]), int(e["status"]))
            for e in self.server.app.audit.events(since)
            if e["action"] == "conjur.retrieve"
        ]

    def seq(self) -> int:
        return int(self.server.app.audit.last_seq)


@pytest.fixture
def vault(make_server: Callable[..., DevServer], tmp_path: Path) -> Vault:
    return Vault(make_server(SEED), tmp_path)


def test_a_team_gets_its_own_connection_as_its_own_identity(vault: Vault) -> None:
    backend = vault.backend()
    assert backend.get_conn_value("db_a", team_name="team_a") == "postgresql://a:Team-A-Passw0rd@db-a/a"
    assert backend.get_variable("bucket", team_name="team_a") == "team-a-bucket"
    assert backend.get_variable("bucket", team_name="team_b") == "team-b-bucket"
    assert vault.reads() == [
        ("host/airflow/team_a", "airflow/teams/team_a/connections/db_a", 200),
        ("host/airflow/team_a", "airflow/teams/team_a/variables/bucket", 200),
        ("host/airflow/team_b", "airflow/teams/team_b/variables/bucket", 200),
    ]


def test_a_team_asking_for_another_teams_id_gets_none_and_never_reads_its_path(vault: Vault) -> None:
    backend = vault.backend()
    since = vault.seq()
    assert backend.get_conn_value("db_b", team_name="team_a") is None
    # Even a guessed path: the team's prefix always comes first, and team_a's identity has no grant on team_b.
    assert backend.get_conn_value("../team_b/connections/db_b", team_name="team_a") is None
    assert backend.get_conn_value("team_b/connections/db_b", team_name="team_a") is None
    assert vault.reads(since) == [
        ("host/airflow/team_a", "airflow/teams/team_a/connections/db_b", 404),
        ("host/airflow/team_a", "airflow/teams/team_a/connections/team_b/connections/db_b", 404),
    ], "'..' is never looked up; every path read is team_a's, as team_a"


def test_fallback_to_global_only_when_configured_and_as_the_teams_identity(vault: Vault) -> None:
    since = vault.seq()
    assert vault.backend().get_conn_value("smtp", team_name="team_a") is None
    assert vault.reads(since) == [("host/airflow/team_a", "airflow/teams/team_a/connections/smtp", 404)], (
        "no fallback by default"
    )
    since = vault.seq()
    backend = vault.backend(team_fallback_to_global=True)
    assert backend.get_conn_value("smtp", team_name="team_a") == "smtp://mail:Shared-Passw0rd@mail/x"
    assert vault.reads(since) == [
        ("host/airflow/team_a", "airflow/teams/team_a/connections/smtp", 404),
        ("host/airflow/team_a", "airflow/shared/connections/smtp", 200),
    ]


def test_no_team_reads_only_the_global_path_as_the_global_identity(vault: Vault) -> None:
    backend = vault.backend()
    since = vault.seq()
    assert backend.get_conn_value("smtp") == "smtp://mail:Shared-Passw0rd@mail/x"
    assert backend.get_conn_value("db_a") is None
    assert backend.get_variable("bucket") is None  # variables_path uses {team}, no global one: not looked up
    assert vault.reads(since) == [
        ("host/airflow/global", "airflow/shared/connections/smtp", 200),
        ("host/airflow/global", "airflow/shared/connections/db_a", 404),
    ]


def test_no_team_on_a_team_template_is_not_found_without_a_vault_call_and_says_why(
    vault: Vault, caplog: pytest.LogCaptureFixture
) -> None:
    backend = vault.backend(global_connections_path=None)
    since = vault.seq()
    with caplog.at_level(logging.WARNING, logger="cyberark_ops.secrets"):
        assert backend.get_conn_value("db_a") is None
        assert backend.get_conn_value("db_b") is None
    assert vault.reads(since) == []
    warnings = [r.getMessage() for r in caplog.records if "Airflow passed no team" in r.getMessage()]
    assert len(warnings) == 1, "once per backend, not once per id"
    assert "connections_path uses {team}" in warnings[0] and "global_connections_path" in warnings[0]


def test_a_team_without_an_entry_in_teams_reads_nothing(vault: Vault, caplog: pytest.LogCaptureFixture) -> None:
    since = vault.seq()
    with caplog.at_level(logging.WARNING, logger="cyberark_ops.secrets"):
        assert vault.backend().get_conn_value("db_a", team_name="team_c") is None
    assert vault.reads(since) == []
    assert any("team 'team_c' has no entry in backend_kwargs teams" in r.getMessage() for r in caplog.records)


def test_without_teams_one_identity_serves_every_team_within_its_namespace(vault: Vault) -> None:
    backend = vault.backend(teams=None, login="host/airflow/team_a", api_key_file=vault.keys["team_a"])
    assert backend.get_conn_value("db_a", team_name="team_a") is not None
    since = vault.seq()
    # team_b's path, read as the one identity: only the vault's grants keep it out (Conjur hides
    # what a role may not read: 404). With teams, team_b's lookups would have been team_b's.
    assert backend.get_conn_value("db_b", team_name="team_b") is None
    assert vault.reads(since) == [("host/airflow/team_a", "airflow/teams/team_b/connections/db_b", 404)]


def test_a_global_template_is_not_read_by_teams_unless_they_may_fall_back(vault: Vault) -> None:
    backend = vault.backend(
        connections_path="airflow/shared/connections/{conn_id}", global_connections_path=None, teams=None
    )
    since = vault.seq()
    assert backend.get_conn_value("smtp", team_name="team_a") is None
    assert vault.reads(since) == []
    assert backend.get_conn_value("smtp") is not None
    fallback = vault.backend(
        connections_path="airflow/shared/connections/{conn_id}",
        global_connections_path=None,
        teams=None,
        team_fallback_to_global=True,
    )
    assert fallback.get_conn_value("smtp", team_name="team_a") is not None


def test_the_cache_keeps_teams_apart(vault: Vault) -> None:
    backend = vault.backend()
    assert backend.get_variable("bucket", team_name="team_a") == "team-a-bucket"
    assert backend.get_variable("bucket", team_name="team_b") == "team-b-bucket"
    since = vault.seq()
    assert backend.get_variable("bucket", team_name="team_a") == "team-a-bucket"
    assert backend.get_variable("bucket", team_name="team_b") == "team-b-bucket"
    assert backend.get_variable("bucket") is None
    assert vault.reads(since) == [], "both answers cached, each under its team"


@pytest.mark.parametrize("team", ["ab", "team/b", "team_a\n", "../x", "t" * 51, "équipe"])
def test_a_malformed_team_name_fails_the_lookup_naming_it(vault: Vault, team: str) -> None:
    since = vault.seq()
    with pytest.raises(VaultLookupFailed, match=r"team_name .* is not an Airflow team name"):
        vault.backend().get_conn_value("db_a", team_name=team)
    assert vault.reads(since) == []


def test_path_for_names_the_teams_path(vault: Vault) -> None:
    backend = vault.backend()
    assert backend.path_for("connections", "db", team="team_a", conn_id="db") == (
        "airflow/teams/team_a/connections/db",
        "",
    )
    assert backend.path_for("connections", "db", conn_id="db") == ("airflow/shared/connections/db", "")
    assert backend.path_for("variables", "x", variable="x") == (
        None,
        "variables_path uses {team}, Airflow passed no team, and no global_variables_path is set",
    )
    assert backend.path_for("connections", "db", team="team_c", conn_id="db")[1] == (
        "team 'team_c' has no entry in backend_kwargs teams"
    )


# -- start-up refusals ------------------------------------------------------------------------------

BASE: dict[str, Any] = {
    "url": "https://conjur.example.com",
    "api": "conjur",
    "account": "demo",
    "login": "host/airflow/global",
    "api_key_env": "CONJUR_KEY",
}


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"connections_path": "airflow/{conn_id}/{team}"}, "connections_path", "before {conn_id}"),
        ({"connections_path": "airflow/{team}-{conn_id}"}, "connections_path", "followed by one of"),
        ({"connections_path": "airflow/{team}{conn_id}"}, "connections_path", "followed by one of"),
        ({"connections_path": "airflow/{team}/{team}/{conn_id}"}, "connections_path", "once"),
        ({"connections_path": "{team}:{conn_id}"}, "connections_path", "followed by one of"),
        ({"config_path": "airflow/{team}/{key}"}, "config_path", "uses {team}"),
        (
            {"connections_path": "{team}/{conn_id}", "variables_path": "vars/{team}/{variable}"},
            "variables_path",
            "distinct prefixes",
        ),
        (
            {"connections_path": "a/{conn_id}", "global_connections_path": "b/{conn_id}"},
            "global_connections_path",
            "only with a connections_path that uses {team}",
        ),
        (
            {"connections_path": "a/{team}/{conn_id}", "global_connections_path": "a/{team}/{conn_id}"},
            "global_connections_path",
            "uses {team}",
        ),
        (
            {
                "connections_path": "ccp:Safe=Airflow-{team};Object={conn_id}",
                "global_connections_path": "ccp:Safe=Airflow-shared;Object={conn_id}",
                "api": "ccp",
                "app_id": "A",
                "login": None,
                "api_key_env": None,
            },
            "global_connections_path",
            "inside the namespace",
        ),
        (
            {"connections_path": "a/{team}/{conn_id}", "teams": {"team_a": {"api_key": "x"}}},
            "teams.team_a.api_key",
            "inline",
        ),
        (
            {"connections_path": "a/{team}/{conn_id}", "teams": {"team_a": {"url": "https://x"}}},
            "teams.team_a.url",
            "once for all teams",
        ),
        (
            {"connections_path": "a/{team}/{conn_id}", "teams": {"team_a": {"connections_path": "x/{conn_id}"}}},
            "teams.team_a.connections_path",
            "once for all teams",
        ),
        (
            {"connections_path": "a/{team}/{conn_id}", "teams": {"a/b": {"login": "x"}}},
            "teams",
            "not an Airflow team name",
        ),
        (
            {"connections_path": "a/{team}/{conn_id}", "teams": {"team_a": {"ca_bundel": "x"}}},
            "teams.team_a.ca_bundel",
            "did you mean",
        ),
        ({"connections_path": "a/{team}/{conn_id}", "teams": []}, "teams", "must be an object"),
        (
            {"connections_path": "a/{team}/{conn_id}", "team_fallback_to_global": "perhaps"},
            "team_fallback_to_global",
            "",
        ),
    ],
)
def test_bad_team_settings_are_refused_at_start_up_naming_the_key(
    kwargs: dict[str, Any], field: str, problem: str
) -> None:
    settings_ = {key: value for key, value in {**BASE, **kwargs}.items() if value is not None}
    with pytest.raises(ConfigurationError) as raised:
        CyberArkSecretsBackend(**settings_)
    assert f"backend_kwargs: {field}:" in str(raised.value)
    assert problem in str(raised.value)


# -- the isolation property -------------------------------------------------------------------------

TEAMS = st.one_of(
    st.sampled_from(["vars", "airflow", "teams", "prod", "connections", "team_a", "team_b"]),
    st.from_regex(TEAM_NAME, fullmatch=True),
)
"""Any team name, and names equal to the literal parts of the templates below."""
SETUPS = {
    "conjur": {
        **BASE,
        "connections_path": "airflow/{team}/connections/{conn_id}",
        "variables_path": "airflow/{team}/variables/{variable}",
    },
    "conjur, hostile bare global path": {
        **BASE,
        "connections_path": "conns/{team}/{conn_id}",
        "global_connections_path": "{conn_id}",
        "variables_path": "vars/{team}.{variable}",
        "global_variables_path": "{variable}",
    },
    "conjur, global path above the teams'": {
        **BASE,
        "env": "prod",
        "connections_path": "airflow/{env}/{team}/{conn_id}",
        "global_connections_path": "airflow/{env}/{conn_id}",
    },
    "ccp": {
        "url": "https://ccp.example.com",
        "api": "ccp",
        "app_id": "Airflow",
        "connections_path": "ccp:Safe=Airflow-{team};Object={conn_id}",
        "global_connections_path": "ccp:Safe=AirflowShared;Object={conn_id}",
    },
    "pvwa": {
        "url": "https://pvwa.example.com",
        "api": "pvwa",
        "login": "svc",
        "password_env": "PVWA_PASSWORD",
        "connections_path": "pvwa:Airflow/{team}.{conn_id}",
        "global_connections_path": "pvwa:{conn_id}",
    },
}
BACKENDS = {
    (name, fallback): CyberArkSecretsBackend(**kwargs, team_fallback_to_global=fallback)
    for name, kwargs in SETUPS.items()
    for fallback in (False, True)
}


@st.composite
def hostile_ids(draw: st.DrawFn, other: str) -> str:
    """Any text, and text spelling ``other``'s paths in every way a template could take it."""
    spelled = st.sampled_from(
        [
            f"{other}/x",
            f"conns/{other}/x",
            f"../{other}/x",
            f"airflow/{other}/connections/x",
            f"conjur:airflow/{other}/connections/x",
            f"conjur:{other}/x",
            f"prod/{other}/x",
            f"Airflow/{other}.x",
            f"pvwa:Airflow/{other}.x",
            f"Airflow-{other};Object=x",
            f"vars/{other}.x",
            f"{other}.x",
        ]
    )
    return draw(
        st.one_of(
            st.text(max_size=60),
            spelled,
            st.builds(
                "".join,
                st.lists(
                    st.sampled_from(["/", ".", ":", ";", other, "x", "conjur:", "airflow", "Airflow/", "vars/"]),
                    max_size=8,
                ),
            ),
        )
    )


@settings(max_examples=400, deadline=None)
@given(
    setup=st.sampled_from(sorted(BACKENDS)), pair=st.lists(TEAMS, min_size=2, max_size=2, unique=True), data=st.data()
)
def test_no_lookup_of_one_team_reads_inside_another_teams_namespace(
    setup: tuple[str, bool], pair: list[str], data: st.DataObject
) -> None:
    backend = BACKENDS[setup]
    team_a, team_b = pair
    item = data.draw(hostile_ids(team_b), label="id")
    kinds = (("connections", "conn_id"), ("variables", "variable"))
    # team_b's namespaces of every kind: a connection id must not read team_b's variables either.
    namespaces = [
        backend.team_namespace(kind, team_b) for kind, _ in kinds if "{team}" in (backend.templates[kind] or "")
    ]
    for kind, placeholder in kinds:
        if backend.templates[kind] is None:
            continue
        for team in (team_a, None):
            paths, _ = backend.lookup_paths(kind, item, team, **{placeholder: item})
            for path in paths:
                canonical = backend.canonical(path)
                assert not any(canonical.startswith(namespace) for namespace in namespaces), (setup, team, canonical)
        # And team_a's own path is in team_a's namespace, so the property is about real paths.
        own, _ = backend.lookup_paths(kind, "x", team_a, **{placeholder: "x"})
        if "{team}" in (backend.templates[kind] or ""):
            assert backend.canonical(own[0]).startswith(backend.team_namespace(kind, team_a))
