"""Shared fixtures: a running dev server over real HTTPS and a requests session trusting its CA."""

from __future__ import annotations

import ast
import functools
import itertools
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from _pytest.mark.expression import Expression  # pytest's own -m evaluation
from hypothesis import settings
from xdist.scheduler import LoadScopeScheduling

from cyberark_ops.client.pacing import DIRECTORY_VARIABLE
from cyberark_ops.devserver import DevServer
from cyberark_ops.testing.process_state import reset_process_state
from tests.airflow.shared_stack import PARTS, run_parts

pytest_plugins = ["cyberark_ops.testing.pytest_plugin"]

# Some shells set PYTHONDONTWRITEBYTECODE: then every process this suite starts (Airflow's api-server,
# scheduler, dag-processor and CLI, each importing Airflow) compiles its modules from source again,
# twice the CPU of a process that loads bytecode as production ones do, and pytest rewrites every
# test module's asserts anew in each worker. From here on, this process and its children cache both.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


class DevClient:
    """A requests session pinned to one dev server.

    ``trust_env`` is off: with it on, ``REQUESTS_CA_BUNDLE`` silently replaces the session's CA.
    """

    def __init__(self, server: DevServer) -> None:
        self.server = server
        self.info = server.info()
        self.url = self.info["url"]
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = self.info["ca_cert"]

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, self.url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.info['admin_token']}", **kwargs.pop("headers", {})}
        return self.request(method, "/_dev" + path, headers=headers, **kwargs)

    def with_client_cert(self) -> DevClient:
        self.session.cert = (self.info["client_cert"], self.info["client_key"])
        return self

    def close(self) -> None:
        self.session.close()


# CI runs each property on the same examples every time (a failure there is reproducible and not a
# coin toss); a developer's run explores new ones and keeps what failed in .hypothesis/.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


SCOPE_GROUPS = {
    "tests/operators/test_sql.py": "database roles vop_*",
    "tests/operators/test_vaulted.py": "database roles vop_*",
    "tests/scrub/test_scrub_exception.py": "database roles vop_*",
    # The shared Airflow stack's modules (tests/airflow/shared_stack.py) with them: one of them sets
    # the vop_* roles, and the stack would start on each worker that runs one of its modules.
    "tests/airflow/test_vaulted_operators.py": "database roles vop_*",
    "tests/airflow/test_real_path.py": "database roles vop_*",
    "tests/airflow/test_decorator_real_path.py": "database roles vop_*",
    "tests/guarantees/test_leaks.py": "database roles vop_*",
    # One multi-team lookup run and one multi-team DAG run serve both (session fixtures below).
    "tests/airflow/test_multi_team.py": "multi-team runs",
    "tests/guarantees/test_team_isolation.py": "multi-team runs",
}
"""Files that must share one xdist worker: those (marked ``database_roles``) that set the same
database roles' passwords (on two workers at once, one would log in with the other's password),
and those sharing one session-scoped Airflow stack."""
SHARED_STACK_GROUP = "database roles vop_*"


FAULTS_MODULE = "tests/guarantees/test_faults.py"
_FAULT_CASE = re.compile(r"test_fault\[(?P<api>[a-z]+)-[a-z]+-(?P<fault>[0-9]+)-")


def _faults_unit(test: str) -> str:
    """The fault matrix's unit for one of its tests: one per API, so that its waits on real
    timeouts (about 70 s in all) can run on several workers; the MariaDB rotation cases of every
    API in one more unit, since they all set the role ``flt_my``'s password. Each unit builds its
    own dev server (the module's ``lab``) on the worker that runs it."""
    case = _FAULT_CASE.match(test)
    if case is None:
        return test.split("[", 1)[0]
    return "rotation (MariaDB role flt_my)" if case["fault"] == "16" else case["api"]


def scheduling_unit(nodeid: str) -> str:
    """The xdist unit a test runs in: its module, the group of a ``SCOPE_GROUPS`` module, or one of
    the fault matrix's units (``_faults_unit``)."""
    module, _, test = nodeid.partition("::")
    if module == FAULTS_MODULE:
        return f"{module}::{_faults_unit(test)}"
    return SCOPE_GROUPS.get(module, module)


class _ModulesAndRoleGroups(LoadScopeScheduling):
    """``--dist loadscope``, with the files of one ``SCOPE_GROUPS`` group as one unit.

    A module is one unit: a file with an Airflow stack shares it through a module-scoped fixture,
    which a split module would start on both workers. (xdist's own ``loadgroup`` marks items by
    rewriting ``item._nodeid``, which pytest 9 no longer reads.) The fault matrix is the exception:
    its units are its APIs (``_faults_unit``).
    """

    def _split_scope(self, nodeid: str) -> str:
        return scheduling_unit(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    return _ModulesAndRoleGroups(config, log) if config.getoption("dist") == "loadscope" else None


_Unit = list[pytest.Item]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order in which xdist hands out units (``.ci/pytest-split`` runs it with
    ``--no-loadscope-reorder``): tests that start an Airflow stack first, in their order (those
    units are the longest, and one that starts last ends last: the pinned 3.1 run collected the
    fault matrix's in-process units before the leak suite's stack). The units marked ``waits`` are
    spread evenly among the stack units (among all units where no stack is selected): side by side,
    the fault matrix's units left two cores idle for 25 s; among the stacks, the first minutes, their
    waits on real timeouts overlap CPU-bound work."""
    items.sort(key=lambda item: item.get_closest_marker("airflow") is None)
    units: dict[str, _Unit] = {}
    for item in items:
        units.setdefault(scheduling_unit(item.nodeid), []).append(item)

    def waits(unit: _Unit) -> bool:
        return all(i.get_closest_marker("waits") and not i.get_closest_marker("airflow") for i in unit)

    waiting = [unit for unit in units.values() if waits(unit)]
    computing = [unit for unit in units.values() if not waits(unit)]
    stacks = sum(1 for unit in computing if any(i.get_closest_marker("airflow") for i in unit))
    order = _spread(computing, waiting, among_first=stacks or len(computing))
    items[:] = [item for unit in order for item in unit]


def _spread(computing: list[_Unit], waiting: list[_Unit], *, among_first: int) -> list[_Unit]:
    """``computing`` in its order, with ``waiting`` (in its order) spread evenly over the positions
    after its first unit and up to its ``among_first``-th (all right after its first unit where that
    span is shorter than two units)."""
    if among_first < 2:
        return [*computing[:1], *waiting, *computing[1:]]
    order = list(computing)
    # Back to front, so that each insertion leaves the earlier positions where they were.
    for rank in reversed(range(len(waiting))):
        order.insert(1 + round(rank * (among_first - 1) / len(waiting)), waiting[rank])
    return order


def _module_marks(path: Path) -> frozenset[str]:
    """The ``pytest.mark.NAME`` terms of a test module's ``pytestmark``, read from its source: marks
    every test of it carries (perhaps not all of them, which only makes a skip rarer)."""
    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets):
            terms = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            names = set()
            for term in terms:
                mark = term.func if isinstance(term, ast.Call) else term
                if isinstance(mark, ast.Attribute) and ast.unparse(mark.value) == "pytest.mark":
                    names.add(mark.attr)
            return frozenset(names)
    return frozenset()


_MARK_NAME = re.compile(r"[^\s()]+")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A test module that no ``-m`` can select is not imported (each xdist worker collects too, and
    modules that start Airflow stacks import more than the quick run needs; schemathesis builds the
    contract module's tests from the spec while collecting). Decided from the module's own
    ``pytestmark`` only: every way its tests may carry the expression's other marks is tried."""
    expression = config.getoption("markexpr")
    if not expression or not collection_path.name.startswith("test_") or collection_path.suffix != ".py":
        return None
    marks = _module_marks(collection_path)
    free = sorted(set(_MARK_NAME.findall(expression)) - {"and", "or", "not"} - marks)
    selection = _compiled(expression)
    if not marks or len(free) > 8 or selection is None:
        return None
    for chosen in itertools.product((False, True), repeat=len(free)):
        if _passes(selection, marks | {name for name, on in zip(free, chosen, strict=True) if on}):
            return None
    return True


@functools.cache
def _compiled(expression: str) -> Expression | None:
    """The ``-m`` expression, compiled once a process; None for one that does not parse, which
    pytest then refuses itself ("Wrong expression passed to '-m'") rather than this hook raising
    a collection error for every module."""
    try:
        return Expression.compile(expression)
    except SyntaxError:
        return None


def _passes(selection: Expression, marks: set[str] | frozenset[str]) -> bool:
    return selection.evaluate(lambda name, /, **_: name in marks)


def pytest_itemcollected(item: pytest.Item) -> None:
    """A file that sets shared database roles' passwords must be in a group (else it would run
    beside another file setting the same roles); the shared stack's modules in one group."""
    module = item.nodeid.split("::", 1)[0]
    if item.get_closest_marker("database_roles") is not None:
        shared = {FAULTS_MODULE}  # a role of its own, set only by its rotation unit
        if module not in SCOPE_GROUPS and module not in shared:
            raise pytest.UsageError(f"{module} is marked database_roles: add it to SCOPE_GROUPS")
    in_shared_stack = isinstance(item, pytest.Function) and item.module.__name__ in PARTS
    if in_shared_stack and SCOPE_GROUPS.get(module) != SHARED_STACK_GROUP:
        raise pytest.UsageError(f"{module} shares the Airflow stack: in SCOPE_GROUPS as {SHARED_STACK_GROUP!r}")


@pytest.fixture(autouse=True)
def _each_test_starts_as_a_new_task_process() -> Iterator[None]:
    """One place resets every process-wide cache and registry after each test (token cache,
    backend cache and clients, fixed-rate budgets, pacers, redaction registry): what one test left
    there must not decide what the next one sees. See ``cyberark_ops.testing.process_state``."""
    yield
    reset_process_state()


@pytest.fixture(scope="session", autouse=True)
def _own_pacing_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """This session's shared pacers, apart from every other run on the machine.

    A pacer's state outlives its process by design (in a file per origin), and a port another run
    freed may be ours a moment later: its 429s would pace our first fetches. In the environment, so
    that the processes tests start share the session's directory too.
    """
    before = os.environ.get(DIRECTORY_VARIABLE)
    os.environ[DIRECTORY_VARIABLE] = str(tmp_path_factory.mktemp("pacing"))
    yield
    if before is None:
        os.environ.pop(DIRECTORY_VARIABLE, None)
    else:
        os.environ[DIRECTORY_VARIABLE] = before


@pytest.fixture(scope="session")
def shared_stack_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each selected module's result on the shared Airflow stack (``tests/airflow/shared_stack.py``),
    by module name: only the parts of modules with a test in this session start."""
    selected = {item.module.__name__ for item in request.session.items if isinstance(item, pytest.Function)}
    return run_parts(selected & PARTS.keys(), tmp_path_factory.mktemp("shared-stack"))


@pytest.fixture(scope="session")
def multi_team_lookups(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Lookups through a real multi-team Execution API (``tests/airflow/test_multi_team.py``)."""
    from tests.airflow.test_multi_team import run_team_lookups

    return run_team_lookups(tmp_path_factory.mktemp("multi-team"))


@pytest.fixture(scope="session")
def multi_team_dags(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Both teams' example DAGs on one real multi-team stack (``tests/airflow/test_multi_team.py``)."""
    from tests.airflow.test_multi_team import run_team_dags

    return run_team_dags(tmp_path_factory.mktemp("multi-team-dags"))


@pytest.fixture
def make_server() -> Iterator[Callable[..., DevServer]]:
    started: list[DevServer] = []

    def start(seed: Any = None, **kwargs: Any) -> DevServer:
        server = DevServer(seed, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def dev_server(make_server: Callable[..., DevServer]) -> DevServer:
    """The dev server with the built-in demo seed."""
    return make_server()


@pytest.fixture
def client(dev_server: DevServer) -> Iterator[DevClient]:
    dev = DevClient(dev_server)
    yield dev
    dev.close()
