"""The dev server's two error types: bad seed / admin input, and an HTTP answer raised from anywhere.

``DevHttpError`` is the only way a handler (or a model it calls) ends a request with an error:
``DevApp._call`` is the one place that turns it into a response. Each API keeps the bodies and codes
of its own errors in its own ``errors`` module (``conjur/errors.py``, ``vault/errors.py``,
``admin.py`` for the admin API), built on the constructors below.
"""

from __future__ import annotations

from typing import Any

from .http import Response, json_response, text_response


class SeedError(ValueError):
    """A seed file or admin request is wrong; ``where`` is the path to the offending field."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class DevHttpError(Exception):
    """An error response (status, body, content type, headers) plus what the audit log should say.

    ``detail`` and ``identity`` land in the request's audit entry when the error is answered, so a
    model can explain a refusal without knowing about requests.
    """

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
        *,
        detail: str | None = None,
        identity: str | None = None,
    ) -> None:
        super().__init__(status)
        self.response = Response(status, body, content_type, dict(headers or {}))
        self.detail = detail
        self.identity = identity

    @property
    def status(self) -> int:
        return self.response.status

    @classmethod
    def of(cls, response: Response, *, detail: str | None = None, identity: str | None = None) -> DevHttpError:
        return cls(
            response.status, response.body, response.content_type, response.headers, detail=detail, identity=identity
        )

    @classmethod
    def json(
        cls, status: int, payload: Any, headers: dict[str, str] | None = None, **audit: str | None
    ) -> DevHttpError:
        return cls.of(json_response(status, payload, headers), **audit)

    @classmethod
    def text(
        cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8", **audit: str | None
    ) -> DevHttpError:
        return cls.of(text_response(status, text, content_type), **audit)


def bad_field(where: str, error: str) -> DevHttpError:
    """A 400 naming the problem and the offending field, for the admin API and ``dev.*`` routes."""
    return DevHttpError.json(400, {"error": error, "field": where})
