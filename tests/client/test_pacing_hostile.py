"""The shared pacer file against a hostile or exhausted machine: a full tmpfs, a forged header.

Pacing is an optimisation: whatever the file or its filesystem, a fetch runs (paced locally).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cyberark_ops.client import ConjurClient, pacing
from cyberark_ops.client.pacing import DIRECTORY_VARIABLE, Pacing, SharedFileStore
from tests.hostile import full_filesystem

from .conftest import HOST_API_KEY, HOST_LOGIN, Vault

FETCH = textwrap.dedent(
    """
    import sys
    from cyberark_ops.client import ConjurApiKeyAuth, ConjurClient, ConjurConfig
    url, ca, account, login, key = sys.argv[1:6]
    config = ConjurConfig(base_url=url, ca_bundle=ca, account=account, auth=ConjurApiKeyAuth(login, key), deadline=20.0)
    with ConjurClient(config) as client:
        value = client.get_secret("prod/db/password")
    print("shared" if config.pacing.pacer(url.rstrip("/")).shared else "local", len(value))
    """
)


@pytest.fixture
def full_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A full 64 KiB tmpfs (as /dev/shm can be) with an empty pacing directory on it."""
    with full_filesystem(tmp_path, ["pacing"]) as mount_point:
        yield mount_point / "pacing"


def test_a_fetch_with_the_pacer_on_a_full_tmpfs_runs_paced_locally(vault: Vault, full_tmpfs: Path) -> None:
    """Before, the new file's first touched page found no memory: SIGBUS, exit 135, no fetch."""
    env = {**os.environ, DIRECTORY_VARIABLE: str(full_tmpfs)}
    args = [vault.url, vault.ca, vault.account, HOST_LOGIN, HOST_API_KEY]
    done = subprocess.run(
        [sys.executable, "-c", FETCH, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["local", str(len("Demo-PG-Passw0rd!"))]


def test_a_forged_rate_in_the_shared_file_does_not_stall_fetches(vault: Vault, tmp_path: Path) -> None:
    """Any process of the same user can write the file: a rate of 1e-300 is spoilt, not obeyed."""
    origin = vault.url.rstrip("/")
    directory = tmp_path / "pacing"
    machine = Pacing.machine_wide(directory)
    state_file = pacing.state_file(origin, directory)
    assert state_file is not None
    assert SharedFileStore.open(state_file, time.monotonic()) is not None  # a file of the right layout
    now = time.monotonic()  # a cut just now: the schedule is live, not released as stale
    with state_file.open("r+b") as file:
        file.seek(16)
        file.write(struct.pack("=5d", 1e-300, 0.0, now, now, now))
    with ConjurClient(vault.conjur_config(pacing=machine)) as client:
        assert client.get_secret("prod/db/password") == "Demo-PG-Passw0rd!"
    assert machine.pacer(origin).shared
    assert machine.pacer(origin).rate is None
