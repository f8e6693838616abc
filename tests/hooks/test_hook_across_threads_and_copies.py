"""One hook shared by threads builds one client; a pickled or copied hook, and its settings, carry no
API key."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import threading
import time

import pytest

from cyberark_ops import CyberArkHook
from cyberark_ops.client.conjur import ConjurClient
from cyberark_ops.settings import ConnectionSettings
from tests.client.conftest import HOST_API_KEY
from tests.hooks.conftest import Connections


def test_threads_sharing_one_hook_build_one_client(conns: Connections, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    original = ConjurClient.__init__

    def counting_init(self: ConjurClient, *args: object, **kwargs: object) -> None:
        time.sleep(0.05)  # widen the race window
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        built.append(self)

    monkeypatch.setattr(ConjurClient, "__init__", counting_init)
    hook = CyberArkHook(conns.conjur())
    barrier = threading.Barrier(8)
    results: list[str] = []

    def fetch() -> None:
        barrier.wait()
        results.append(hook.get_secret("prod/db/password"))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert len(built) == 1
    hook.close()


def test_pickled_or_copied_hooks_carry_no_api_key(conns: Connections) -> None:
    hook = CyberArkHook(conns.conjur())
    assert hook.api == "conjur"
    hook.get_secret("prod/db/password")
    data = pickle.dumps(hook)
    assert HOST_API_KEY.encode() not in data
    clone = pickle.loads(data)
    assert clone.get_secret("prod/db/password") == hook.get_secret("prod/db/password")
    assert HOST_API_KEY not in repr(copy.deepcopy(hook).__dict__)
    hook.close()
    clone.close()


def test_connection_settings_refuse_pickle_and_asdict(conns: Connections) -> None:
    settings = CyberArkHook(conns.conjur(api_key=HOST_API_KEY, password=None)).settings
    assert isinstance(settings, ConnectionSettings)
    assert HOST_API_KEY not in repr(settings)
    with pytest.raises(TypeError):
        pickle.dumps(settings)
    with pytest.raises(TypeError):
        dataclasses.asdict(settings)  # type: ignore[call-overload]
