"""Figure 2: vault calls and wall time for a task that needs 1, 5, 20 or 50 Conjur secrets.

Each task is modelled as a task process sees it: a new client with no token yet, so the calls are
authenticate plus the reads. Calls are counted from the dev server's audit log, not from the client.
"""

from __future__ import annotations

import time

from cyberark_ops.client import ConjurClient, TokenCache

from ._common import BATCH_IDS, Config, Row, Server, median, ms
from .latency import conjur_config

FIG = "2 secrets per task"
COUNTS = (1, 5, 20, 50)


def run(server: Server, config: Config) -> list[Row]:
    rows: list[Row] = []
    base_config = conjur_config(server)

    def batch(ids: list[str]) -> None:
        with ConjurClient(base_config, token_cache=TokenCache()) as client:
            values = client.get_secrets(ids)
        if len(values) != len(ids):
            raise AssertionError("the batch returned fewer values than asked for")

    def singles(ids: list[str]) -> None:
        with ConjurClient(base_config, token_cache=TokenCache()) as client:
            for variable_id in ids:
                client.get_secret(variable_id)

    batch(BATCH_IDS[:1])  # TLS context and connection code paths warmed once
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(config.batch_reps):  # interleaved repetitions: a load drift hits both alike
        for count in COUNTS:
            ids = BATCH_IDS[:count]
            for name, work in (("batch", batch), ("singles", singles)):
                start = time.perf_counter()
                work(ids)
                times.setdefault((name, count), []).append(time.perf_counter() - start)
    one = median(times[("batch", 1)])
    for count in COUNTS:
        ids = BATCH_IDS[:count]
        with server.counting() as batch_calls:
            batch(ids)
        with server.counting() as single_calls:
            singles(ids)
        t_batch, t_single = median(times[("batch", count)]), median(times[("singles", count)])
        rows.append(
            Row(
                FIG,
                f"{count} secrets: batch `ConjurClient.get_secrets` vs one by one",
                f"calls {len(batch_calls)} vs {len(single_calls)}; {ms(t_batch)} vs {ms(t_single)}",
                f"{t_batch / one:.2f}x one secret; {t_single / t_batch:.1f}x faster than singles",
                "2 calls (authenticate + one batch)",
                len(batch_calls) == 2,
            )
        )
    return rows
