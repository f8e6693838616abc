"""Triggers for tests/airflow/test_triggerer.py, imported by the triggerer from its plugins folder.

``TickingTrigger`` writes a timestamp every 50 ms until both fetches are done: the heartbeat the
test counts inside each fetch's time at the vault. ``ProofFetchTrigger`` is the product trigger
started once the heartbeat runs, then logs a fetched value on purpose (it must come out masked).
``BlockingFetchTrigger`` is the control: the sync fetch called on the loop, as a trigger must not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from cyberark_ops import CyberArkHook
from cyberark_ops.triggers import CyberArkSecretTrigger

FETCHES_DONE = 2


async def heartbeat_started(proof_dir: str) -> None:
    ticks = Path(proof_dir) / "ticks"
    while not ticks.exists() or not ticks.read_text().strip():
        await asyncio.sleep(0.05)


def fetch_done(proof_dir: str, name: str) -> None:
    with (Path(proof_dir) / "fetches").open("a") as out:
        out.write(f"{name}\n")


class TickingTrigger(BaseTrigger):
    def __init__(self, proof_dir: str, interval: float = 0.05, max_ticks: int = 4000) -> None:
        super().__init__()
        self.proof_dir = proof_dir
        self.interval = interval
        self.max_ticks = max_ticks

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "proof_triggers.TickingTrigger",
            {"proof_dir": self.proof_dir, "interval": self.interval, "max_ticks": self.max_ticks},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        done = Path(self.proof_dir) / "fetches"
        ticks_file = Path(self.proof_dir) / "ticks"
        # A retried try (Airflow's resume race) carries on the count; a retried fetch is still one name.
        ticks = len(ticks_file.read_text().split()) if ticks_file.exists() else 0
        with ticks_file.open("a") as out:
            while ticks < self.max_ticks:
                await asyncio.sleep(self.interval)
                ticks += 1
                out.write(f"{time.time():.6f}\n")
                out.flush()
                if done.exists() and len(set(done.read_text().split())) >= FETCHES_DONE:
                    break
        yield TriggerEvent({"ticks": ticks})


class ProofFetchTrigger(CyberArkSecretTrigger):
    def __init__(self, refs: list[str], cyberark_conn_id: str, *, proof_dir: str, **kwargs: Any) -> None:
        super().__init__(refs, cyberark_conn_id, **kwargs)
        self.proof_dir = proof_dir

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return "proof_triggers.ProofFetchTrigger", {**kwargs, "proof_dir": self.proof_dir}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await heartbeat_started(self.proof_dir)
        async for event in super().run():
            with CyberArkHook(self.cyberark_conn_id) as hook:
                value = await hook.aget_secret(self.refs[0])
            self.log.info("canary from the trigger: %s", value)
            print(f"canary on the trigger's stdout: {value}", flush=True)
            fetch_done(self.proof_dir, "async")
            yield event
            return


class BlockingFetchTrigger(BaseTrigger):
    def __init__(self, ref: str, cyberark_conn_id: str, proof_dir: str) -> None:
        super().__init__()
        self.ref = ref
        self.cyberark_conn_id = cyberark_conn_id
        self.proof_dir = proof_dir

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "proof_triggers.BlockingFetchTrigger",
            {"ref": self.ref, "cyberark_conn_id": self.cyberark_conn_id, "proof_dir": self.proof_dir},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await heartbeat_started(self.proof_dir)
        hook = CyberArkHook(self.cyberark_conn_id, reason="blocking control")
        fetcher = await hook.afetcher()
        fetcher.get_secret(self.ref)  # the sync fetch on the loop: what the async methods avoid
        hook.close()
        fetch_done(self.proof_dir, "blocking")
        yield TriggerEvent({"status": "fetched"})
