"""docs/quickstart.md, pasted literally: its shell blocks, run as written in a fresh ``HOME``,
reach a green run of the example DAG it copies.

What the test does in the user's place, and nothing else:

- "Get the code": the clone is a copy of this checkout and its ``.venv`` the one of this
  checkout (``git clone`` needs the network; ``.ci/setup demo`` would build the same venv).
- "The demo" (``bash .ci/demo``) is optional in the guide and not run here.
- Shell 1 blocks (the dev server serves until Ctrl-C): run in the background; "paste the lines"
  is done with the lines it printed, unchanged.
- ``airflow standalone`` blocks until Ctrl-C: run in the background, with the metadata DB polled
  until the DAG is parsed (the guide: "once ... listed by ``airflow dags list``"), then shell 3's
  block as written, then the DB polled until the run ends.

Ports are free ones on 127.0.0.1 instead of 8080/8793/8794 (other Airflow stacks may run on this
machine), and the migrated SQLite DB Airflow would create is copied from the one the suite keeps
per install.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from cyberark_ops.testing.airflow_stack import AirflowStack, free_port

pytestmark = [pytest.mark.airflow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "docs" / "quickstart.md"
END = "# end of the lines to paste"
DAG_ID = "cyberark_vaulted_sql"


def shell_blocks() -> dict[str, list[str]]:
    """The ``bash`` blocks of the quickstart, by the heading they appear under."""
    blocks: dict[str, list[str]] = {}
    heading = ""
    for match in re.finditer(r"^(#{2,3}) ([^\n]+)$|^```bash\n(.*?)^```$", QUICKSTART.read_text(), re.M | re.S):
        if match.group(2):
            heading = match.group(2).strip()
        else:
            blocks.setdefault(heading, []).append(match.group(3))
    return blocks


def _copy_checkout(target: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(ROOT / ".venv")


def _user_env(home: Path) -> dict[str, str]:
    """A new user's login shell: no Airflow settings, no active venv, this checkout's venv off PATH."""
    venv_bin = str(ROOT / ".venv" / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p and p != venv_bin)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "XDG_", "PYTEST", "CYBERARK"))
    }
    api_port = free_port()
    return {
        **env,
        "HOME": str(home),
        "PATH": path,
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",  # loopback only, on a shared test machine
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }


class Background:
    """A shell block that runs until stopped, in its own session; its output read line by line."""

    def __init__(self, script: str, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.lines: queue.Queue[str] = queue.Queue()
        self.process = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        with self.log.open("w") as out:
            for line in self.process.stdout:
                out.write(line)
                out.flush()
                self.lines.put(line.rstrip("\n"))
        self.lines.put("")

    def read_until(self, last: str, timeout: float) -> list[str]:
        seen: list[str] = []
        while not seen or seen[-1] != last:
            line = self.lines.get(timeout=timeout)
            assert line or self.process.poll() is None, f"exited with {self.process.poll()}: {seen[-20:]}"
            seen.append(line)
        return seen

    def stop(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            family = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
            for proc in family:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.send_signal(signal.SIGINT if proc.pid == self.process.pid else signal.SIGTERM)
            _, alive = psutil.wait_procs(family, timeout=5)  # then killed: a throwaway home
            for proc in alive:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
        self.process.wait(timeout=30)


def _query(db: Path, sql: str, *params: str) -> list[tuple[object, ...]]:
    if not db.is_file():
        return []
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
            return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or the scheduler holds the lock
        return []


def _wait(what: str, check: object, airflow: Background, timeout: float) -> list[tuple[object, ...]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert airflow.process.poll() is None, f"airflow standalone exited; see {airflow.log}"
        rows = check()  # type: ignore[operator]
        if rows:
            return list(rows)
        time.sleep(1)
    raise AssertionError(f"{what}: not within {timeout} s; see {airflow.log}")


@pytest.fixture
def user(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], list[Background]]]:
    clone = tmp_path / "cyberark-ops"
    _copy_checkout(clone)
    home = tmp_path / "home"
    home.mkdir()
    running: list[Background] = []
    try:
        yield clone, _user_env(home), running
    finally:
        for process in reversed(running):
            process.stop()


def test_the_quickstart_as_written_runs_a_dag_green(
    user: tuple[Path, dict[str, str], list[Background]], tmp_path: Path
) -> None:
    clone, env, running = user
    blocks = shell_blocks()
    (get_code,) = blocks["1. Get the code"]
    assert "git clone" in get_code and "bash .ci/setup demo" in get_code  # done by the fixture
    (devserver_block,) = blocks["Shell 1: the dev server"]
    setup_block, standalone_block = blocks["Shell 2: Airflow"]
    (trigger_block,) = blocks["Shell 3: run the DAG"]
    (doctor_block,) = blocks["5. Check the connection"]
    assert standalone_block.strip() == "airflow standalone"

    devserver = Background(devserver_block, clone, env, tmp_path / "shell1.log")
    running.append(devserver)
    printed = devserver.read_until(END, timeout=60)
    paste = "\n".join(printed[1:])  # everything after the JSON start line, as printed

    airflow_home = clone / ".airflow-home"
    migrated = AirflowStack(airflow_home, airflow_home / "dags")
    migrated.migrate()  # the DB `airflow standalone` would migrate, copied from the suite's template
    airflow = Background(f"{setup_block}\n{paste}\n{standalone_block}", clone, env, tmp_path / "shell2-standalone.log")
    running.append(airflow)
    db = airflow_home / "airflow.db"
    _wait(
        "the DAG parsed",
        lambda: _query(db, "select 1 from serialized_dag where dag_id=?", DAG_ID),
        airflow,
        timeout=240,
    )

    shell3 = subprocess.run(
        ["bash", "-c", trigger_block], cwd=clone, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert shell3.returncode == 0, shell3.stdout[-2000:] + shell3.stderr[-3000:]
    states = _wait(
        "the run finished",
        lambda: _query(db, "select state from dag_run where dag_id=? and state in ('success', 'failed')", DAG_ID),
        airflow,
        timeout=300,
    )
    assert states == [("success",)], (airflow.log.read_text()[-5000:], sorted(airflow_home.glob("logs/**/*.log")))

    # How to log in, as the guide says: the generated admin password in AIRFLOW_HOME.
    passwords = airflow_home / "simple_auth_manager_passwords.json.generated"
    assert passwords.is_file() and '"admin"' in passwords.read_text()

    doctor = subprocess.run(
        ["bash", "-c", f"source .venv/bin/activate\n{paste}\n{doctor_block}"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert doctor.returncode == 0, doctor.stdout[-3000:] + doctor.stderr[-3000:]
