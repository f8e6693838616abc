"""``@with_cyberark_secret``: a TaskFlow function gets CyberArk secrets just in time, as keyword arguments.

Why a function wrapper and not an operator: the return value must be scrubbed *before* Airflow
pushes it as XCom (nothing masks XCom, and ``post_execute`` cannot change it), so the scrub
happens inside the callable ``PythonOperator`` runs. The fetch happens there too, in the task
process, never at DAG parse time: placed above ``@task`` the decorator re-wraps the task's
function instead of wrapping the parse-time factory call.

Each call: one ``CyberArkHook`` per vault connection; the plain-string secrets of one connection
in one ``get_secrets`` call (a Conjur batch); every fetched value is masked by the fetch itself
(all leak forms); the function runs inside ``scrub.task_scope()``; its return value is scrubbed,
and an exception it raises is replaced by a scrubbed one; the registry is cleared at the end.
Exclusive PVWA accounts (``check_in``) are checked in when the function returns or raises, and on
SIGTERM (``cyberark_ops.checkin``: a ``@task`` has no ``on_kill`` of its own).
"""

from __future__ import annotations

import ast
import asyncio
import functools
import inspect
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from . import checkin, scrub
from .client import ConfigurationError
from .scrub_exceptions import scrubbed_exceptions

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONN_ID = "cyberark_default"
# Decorators that ship the function's source to another interpreter: the wrapper would not exist
# there (NameError at run time), so these are refused when the DAG is parsed.
_SHIPPING_OPERATORS = ("virtualenv", "externalpython", "external_python", "docker", "kubernetes", "pythonvirtualenv")


@dataclass(frozen=True)
class Secret:
    """A secret to inject: ``ref`` (a Conjur variable id or a typed reference such as
    ``ccp:Safe=DB;Object=pg``); ``as_credential`` hands the function a :class:`Credential`
    (secret plus username, address, ...) instead of the value alone; ``vault_conn_id`` overrides
    the decorator's connection for this secret."""

    ref: str
    as_credential: bool = False
    vault_conn_id: str | None = None


def _is_task_decorator(fn: Any) -> bool:
    return bool(getattr(fn, "_airflow_is_task_decorator", False))


def _refuse_shipped(decorated: Any) -> None:
    operator_class = getattr(decorated, "operator_class", None)
    names = " ".join(
        str(x).lower()
        for x in (
            getattr(operator_class, "__name__", ""),
            getattr(operator_class, "custom_operator_name", ""),
        )
    )
    if any(n in names.replace("_", "") or n in names for n in _SHIPPING_OPERATORS):
        raise ConfigurationError(
            f"@with_cyberark_secret cannot be used with {getattr(operator_class, 'custom_operator_name', names)!r}: "
            "that decorator runs the function's source in another interpreter, where this wrapper does "
            "not exist; fetch the secret with CyberArkHook in a @task and pass only non-secret data on",
            field="decorator",
        )


def _shipping_decorator_above(fn: Callable[..., Any]) -> str | None:
    """The name of a source-shipping decorator written above ours (``@task.virtualenv`` over
    ``@with_cyberark_secret``), read from the function's source: in that order the task object
    is built after us, so its source (with our decorator line in it) is all there is to go by."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None  # no source (REPL, exec): nothing would be shipped from it either
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name.lower().replace("_", "") in {n.replace("_", "") for n in _SHIPPING_OPERATORS}:
            return ast.unparse(target)
    return None


def _refuse_shipped_below(fn: Callable[..., Any]) -> None:
    shipped = _shipping_decorator_above(fn)
    if shipped:
        raise ConfigurationError(
            f"@with_cyberark_secret cannot be used under @{shipped}: that decorator runs the function's source "
            "in another interpreter, where this wrapper does not exist; fetch the secret with CyberArkHook "
            "in a @task and pass only non-secret data on",
            field="decorator",
        )


class _Injector:
    """What one decorated function fetches; ``fetch()`` runs at call time only."""

    def __init__(
        self,
        secrets: Mapping[str, str | Secret],
        vault_conn_id: str,
        reason: str | None,
        allow_short_secret: bool,
        retrieve: Mapping[str, Any] | None = None,
    ) -> None:
        if not secrets:
            raise ConfigurationError("@with_cyberark_secret needs at least one name=reference", field="secrets")
        self.secrets: dict[str, Secret] = {}
        for name, spec in secrets.items():
            secret = Secret(spec) if isinstance(spec, str) else spec
            if not isinstance(secret, Secret) or not isinstance(secret.ref, str) or not secret.ref:
                raise ConfigurationError(
                    f"@with_cyberark_secret({name}=...) needs a reference string or Secret(...)", field=name
                )
            self.secrets[name] = secret
        self.vault_conn_id = vault_conn_id
        self.reason = reason
        self.allow_short_secret = allow_short_secret
        self.retrieve = {k: v for k, v in (retrieve or {}).items() if v is not None}
        for name in ("ticketing_system", "ticket_id"):
            value = self.retrieve.get(name)
            if value is not None and not isinstance(value, str):
                raise ConfigurationError(f"@with_cyberark_secret({name}=...) must be a string", field=name)

    def retrieve_options(self) -> dict[str, Any]:
        """``check_in`` / ticket overrides, templates rendered against the running task's context
        (``{{ dag_run.conf.get('ticket_id', '') }}``)."""
        options = dict(self.retrieve)
        if any(isinstance(v, str) and "{{" in v for v in options.values()):
            from ._compat import current_context

            context = current_context()
            if context is None:
                raise ConfigurationError("a templated ticket needs a running task's context", field="ticket_id")
            task = context["task"]
            for name, value in options.items():
                if isinstance(value, str) and "{{" in value:
                    rendered = task.render_template(value, context)
                    if not isinstance(rendered, str):
                        raise ConfigurationError(
                            f"{name}: must render to a string, got {type(rendered).__name__}", field=name
                        )
                    options[name] = rendered
        return options

    def fetch(self, checkouts: list[Any]) -> dict[str, Any]:
        """The values to inject; hooks holding exclusive accounts go to ``checkouts`` (also when a
        later fetch fails), for ``check_in_all``."""
        from .hooks.cyberark import CyberArkHook

        by_conn: dict[str, list[tuple[str, Secret]]] = {}
        for name, secret in self.secrets.items():
            by_conn.setdefault(secret.vault_conn_id or self.vault_conn_id, []).append((name, secret))
        values: dict[str, Any] = {}
        for conn_id, items in by_conn.items():
            # The fetch policy refuses a value too short to mask (unless allowed), before any is injected.
            hook = CyberArkHook(
                conn_id, reason=self.reason, allow_short_secret=self.allow_short_secret, **self.retrieve_options()
            )
            try:
                plain = [(n, s) for n, s in items if not s.as_credential]
                if plain:
                    fetched = hook.get_secrets([s.ref for _, s in plain])
                    for name, secret in plain:
                        values[name] = fetched[secret.ref]
                for name, secret in items:
                    if secret.as_credential:
                        values[name] = hook.get_credential(secret.ref)
            finally:
                hook.close()
                if hook.checked_out:
                    checkin.hold(hook)
                    checkouts.append(hook)
        return values


def check_in_all(hooks: list[Any]) -> None:
    """Checks in what each hook holds; failures are logged by the fetch core, never raised."""
    while hooks:
        checkin.release(hooks.pop())


def _visible_signature(fn: Callable[..., Any], hidden: set[str]) -> inspect.Signature:
    signature = inspect.signature(fn)
    missing = hidden - set(signature.parameters)
    if missing and not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        raise ConfigurationError(
            f"{fn.__name__}() has no parameter for the injected secret(s) {sorted(missing)}", field="secrets"
        )
    return signature.replace(parameters=[p for n, p in signature.parameters.items() if n not in hidden])


def _arranger(
    fn: Callable[..., Any], hidden: set[str], visible: inspect.Signature
) -> Callable[[tuple[Any, ...], dict[str, Any], dict[str, Any]], tuple[list[Any], dict[str, Any]]]:
    """How a call's arguments and the injected secrets become ``fn``'s arguments.

    The caller sees ``visible`` (the injected parameters removed) and binds against it:
    ``def load(password, table)`` is called ``load("sales")``, so "sales" is ``table``. Appending
    the secrets as keywords to the caller's positional arguments gave "sales" to ``password`` and
    then "multiple values for argument 'password'". So the call is bound by name first, then
    rebuilt in ``fn``'s own order: positionally where ``fn`` needs it (positional-only parameters,
    and those before a ``*args``), by keyword otherwise.
    """
    full = inspect.signature(fn)
    kinds = inspect.Parameter
    has_star = any(p.kind is kinds.VAR_POSITIONAL for p in full.parameters.values())
    extra_hidden = hidden - set(full.parameters)  # received through **kwargs

    def positional(parameter: inspect.Parameter) -> bool:
        return parameter.kind is kinds.POSITIONAL_ONLY or (has_star and parameter.kind is kinds.POSITIONAL_OR_KEYWORD)

    def arrange(
        args: tuple[Any, ...], kwargs: dict[str, Any], injected: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        arguments = visible.bind(*args, **kwargs).arguments
        call_args: list[Any] = []
        call_kwargs: dict[str, Any] = {}
        for name, parameter in full.parameters.items():
            if parameter.kind is kinds.VAR_POSITIONAL:
                call_args.extend(arguments.get(name, ()))
                continue
            if parameter.kind is kinds.VAR_KEYWORD:
                call_kwargs.update(arguments.get(name, {}))
                continue
            if name in hidden:
                value = injected[name]
            elif name in arguments:
                value = arguments[name]
            elif positional(parameter):
                value = parameter.default  # bind() has checked that it has one
            else:
                continue
            if positional(parameter):
                call_args.append(value)
            else:
                call_kwargs[name] = value
        for name in extra_hidden:
            call_kwargs[name] = injected[name]
        return call_args, call_kwargs

    return arrange


def _wrap(fn: Callable[..., Any], injector: _Injector) -> Callable[..., Any]:
    hidden = set(injector.secrets)
    visible = _visible_signature(fn, hidden)
    arrange = _arranger(fn, hidden, visible)

    def clash(kwargs: Mapping[str, Any]) -> None:
        taken = hidden & set(kwargs)
        if taken:
            raise ConfigurationError(f"{sorted(taken)} are injected by @with_cyberark_secret; do not pass them")

    @functools.wraps(fn)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        clash(kwargs)
        visible.bind(*args, **kwargs)  # a call that cannot bind fails before any fetch
        checkouts: list[Any] = []
        with scrub.task_scope():
            try:
                with scrubbed_exceptions():
                    call_args, call_kwargs = arrange(args, kwargs, injector.fetch(checkouts))
                    result = fn(*call_args, **call_kwargs)
            finally:
                check_in_all(checkouts)
            return scrub.scrub(result)

    @functools.wraps(fn)
    async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
        clash(kwargs)
        with scrub.task_scope():
            # The fetch blocks on HTTP and masks through the supervisor's comms with a blocking
            # send(); a worker thread keeps both off the event loop (send() from the loop thread
            # can deadlock against an asend() in flight).
            visible.bind(*args, **kwargs)
            checkin.release_on_sigterm()  # here: only the main thread may install it
            checkouts: list[Any] = []
            try:
                injected = await asyncio.to_thread(injector.fetch, checkouts)
            except BaseException:
                await asyncio.to_thread(check_in_all, checkouts)
                raise
            try:
                with scrubbed_exceptions():
                    call_args, call_kwargs = arrange(args, kwargs, injected)
                    result = await fn(*call_args, **call_kwargs)
            finally:
                injected.clear()
                await asyncio.to_thread(check_in_all, checkouts)
            return scrub.scrub(result)

    wrapper: Callable[..., Any] = async_wrapper if inspect.iscoroutinefunction(fn) else sync_wrapper
    # inspect.signature prefers __signature__ over following __wrapped__: Airflow binds op_args /
    # op_kwargs / context keys against the parameters it can see, so the injected ones are hidden.
    wrapper.__signature__ = visible  # type: ignore[attr-defined]
    annotations = dict(getattr(fn, "__annotations__", {}))
    for name in hidden:
        annotations.pop(name, None)
    wrapper.__annotations__ = annotations
    wrapper._cyberark_secrets = tuple(hidden)  # type: ignore[attr-defined]
    return wrapper


def with_cyberark_secret(
    *,
    vault_conn_id: str = DEFAULT_CONN_ID,
    reason: str | None = None,
    allow_short_secret: bool = False,
    check_in: bool | None = None,
    ticketing_system: str | None = None,
    ticket_id: str | None = None,
    **secrets: str | Secret,
) -> Callable[[F], F]:
    """Inject CyberArk secrets as keyword arguments, fetched when the task runs.

    ``@with_cyberark_secret(password="prod/db/password", api=Secret("ccp:Safe=S;Object=o", as_credential=True))``
    above or below ``@task`` / ``@task.python``: ``password`` arrives as ``str``, ``api`` as a
    :class:`Credential`. Those parameters are hidden from the signature Airflow sees. Secrets
    shorter than ``[logging] min_length_masked_secret`` fail the task (no value in the message)
    unless ``allow_short_secret``. Refused at parse time under decorators that ship the source
    elsewhere (virtualenv, external_python, docker, kubernetes).

    PVWA / Privilege Cloud: ``check_in`` overrides the connection's extra (exclusive accounts are
    checked in when the function ends, and on SIGTERM); ``ticketing_system`` / ``ticket_id``
    override the connection's ticket and may be templates rendered when the task runs
    (``"{{ dag_run.conf.get('ticket_id', '') }}"``; empty keeps the connection's).
    """
    retrieve = {"check_in": check_in, "ticketing_system": ticketing_system, "ticket_id": ticket_id}
    injector = _Injector(secrets, vault_conn_id, reason, allow_short_secret, retrieve)

    def decorate(fn: F) -> F:
        if _is_task_decorator(fn):  # placed above @task: re-wrap its function, call nothing now
            _refuse_shipped(fn)
            import attr

            decorated: Any = fn
            return cast(F, attr.evolve(decorated, function=_wrap(decorated.function, injector)))
        if not callable(fn):
            raise TypeError("@with_cyberark_secret decorates a function")
        _refuse_shipped_below(fn)
        return cast(F, _wrap(fn, injector))

    return decorate


def cyberark_task(
    python_callable: Callable[..., Any] | None = None,
    multiple_outputs: bool | None = None,
    *,
    secrets: Mapping[str, str | Secret] | None = None,
    vault_conn_id: str = DEFAULT_CONN_ID,
    reason: str | None = None,
    allow_short_secret: bool = False,
    check_in: bool | None = None,
    ticketing_system: str | None = None,
    ticket_id: str | None = None,
    **kwargs: Any,
) -> Any:
    """``@task.cyberark(secrets={"password": "prod/db/password"}, retries=2)``: ``@task`` and
    :func:`with_cyberark_secret` in one. The secrets come as a mapping because every other keyword
    is the operator's (``task_id``, ``retries``, ...), as with ``@task``."""
    from airflow.providers.standard.decorators.python import python_task

    inject = with_cyberark_secret(
        vault_conn_id=vault_conn_id,
        reason=reason,
        allow_short_secret=allow_short_secret,
        check_in=check_in,
        ticketing_system=ticketing_system,
        ticket_id=ticket_id,
        **dict(secrets or {}),
    )

    def decorate(fn: Callable[..., Any]) -> Any:
        return python_task(python_callable=inject(fn), multiple_outputs=multiple_outputs, **kwargs)

    return decorate(python_callable) if python_callable is not None else decorate


__all__ = ["Secret", "cyberark_task", "with_cyberark_secret"]
