"""The forms a secret takes once escaped, and which of them are worth searching for.

One definition (:func:`leak_forms`) serves the in-process matcher, Airflow's masker (a bounded
subset, :func:`masked_forms`) and the guarantee suite's table of forms. Nothing here logs or
raises a secret value.
"""

from __future__ import annotations

import base64
import html
import json
import re
import string
import unicodedata
from collections.abc import Callable

COMPOSE_LIMIT = 8192
"""Values up to this many characters get every composition of up to :data:`DEPTH` escapes."""

SIZE_CAP = 65536
"""Values above this many characters get their single escapes only, no per-line forms, and are
not handed to Airflow's masker (it recompiles its whole alternation on every call)."""

AIRFLOW_FORMS_LIMIT = 4096
"""Values up to this many characters are handed to Airflow with their single escapes; longer
ones (up to :data:`SIZE_CAP`) as the raw value only."""

DEPTH = 3
"""Escapes composed at most: common-sql's ``Operator output is:`` line of a JSON document is JSON,
then ``repr``, then the task log's own JSON line."""


def _json(value: str) -> str:
    return json.dumps(value)[1:-1]


def _json_unicode(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _repr_single(value: str) -> str:
    """As inside a ``repr`` in ``'`` quotes, as Python writes it when the whole string also holds a
    ``"``: every ``'`` becomes ``\\'``."""
    return repr('"' + value)[2:-1]


def _repr_double(value: str) -> str:
    """As inside a ``repr`` in ``"`` quotes: Python uses them only for a string holding ``'`` and
    no ``"``; a value holding ``"`` is never written so, and gets its ``'``-quoted form."""
    if '"' in value:
        return _repr_single(value)
    return repr("'" + value)[2:-1]


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def _quoter(safe: str, *, plus: bool = False) -> Callable[[str], str]:
    """``urllib.parse.quote`` (``quote_plus`` with ``plus``), the same text, at C speed: one
    lookup per byte through ``map`` instead of ``quote``'s Python loop (2 s for 5 MB)."""
    kept = _UNRESERVED | frozenset(safe.encode("ascii"))
    table = [chr(byte) if byte in kept else f"%{byte:02X}" for byte in range(256)]
    if plus:
        table[ord(" ")] = "+"
    lookup = table.__getitem__

    def escape(value: str) -> str:
        return "".join(map(lookup, value.encode("utf-8")))

    return escape


_quote = _quoter("")
_quote_sqlalchemy = _quoter(" +")
_quote_plus = _quoter("", plus=True)


def _html(value: str) -> str:
    return html.escape(value, quote=True)


ESCAPES: dict[str, Callable[[str], str]] = {
    "json": _json,
    "json_unicode": _json_unicode,
    "repr_sq": _repr_single,
    "repr_dq": _repr_double,
    "quote": _quote,
    "quote_plus": _quote_plus,
    "quote_sqlalchemy": _quote_sqlalchemy,
    "html": _html,
}
"""The escapes composed with one another, by name (a composition is named ``json>repr_sq``:
JSON first, then ``repr``)."""


def _b64(data: bytes, *, urlsafe: bool = False) -> str:
    encoded = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return encoded.decode("ascii").rstrip("=")


_WORD = re.compile(r"[^\W_]")
_ASCII_FILLER = frozenset(string.punctuation + string.whitespace)


def _filler(char: str) -> bool:
    return char in _ASCII_FILLER or char.isspace() or unicodedata.category(char).startswith("P")


def qualifies(text: str, min_length: int) -> bool:
    """Whether ``text`` is worth searching for: at least ``min_length`` characters (as Airflow's
    ``[logging] min_length_masked_secret``) and not made only of whitespace and punctuation.

    Anything else (``1``, ``prod``, a ``{`` line of pretty-printed JSON) occurs in ordinary data,
    where replacing it would corrupt values that hold no secret at all.
    """
    if len(text) < min_length:
        return False
    if _WORD.search(text) is not None:
        return True
    return not all(map(_filler, text))


_default_min_length: list[int] = []


def default_min_length() -> int:
    """``[logging] min_length_masked_secret``, looked up once per process."""
    if not _default_min_length:
        from cyberark_ops._compat import min_masked_length

        _default_min_length.append(min_masked_length())
    return _default_min_length[0]


def _singles(value: str, username: str | None) -> dict[str, str]:
    # Derived from one another where that gives the same text (a 5 MB value must register in < 1 s).
    data = value.encode("utf-8")
    quoted = _quote(value)
    json_form = _json(value)
    repr_form = repr(value)[1:-1]
    # repr(value) is written in " quotes (equal to repr_dq) only for a value holding ' and no ";
    # otherwise in ' quotes, equal to both (without a ', the two styles escape alike).
    single = _repr_single(value) if "'" in value and '"' not in value else repr_form
    found = {
        "raw": value,
        "quote": quoted,
        # quote writes a space as %20 and + as %2B, and % itself as %25: these replaces are exact
        "quote_sqlalchemy": quoted.replace("%20", " ").replace("%2B", "+"),
        "quote_plus": quoted.replace("%20", "+"),
        "json": json_form,
        # ensure_ascii=True also escapes DEL (\x7f), which ensure_ascii=False leaves as it is
        "json_unicode": json_form if value.isascii() and "\x7f" not in value else _json_unicode(value),
        "repr": repr_form,
        "repr_sq": single,
        "repr_dq": repr_form,
        "html": _html(value),
        "base64": _b64(data),
        "base64url": _b64(data, urlsafe=True),
    }
    if username:
        pair = username.encode("utf-8") + b":" + data
        found["basic"] = _b64(pair)
        found["basic_url"] = _b64(pair, urlsafe=True)
    return found


def _compositions(value: str, known: set[str], *, singles: bool = False) -> dict[str, str]:
    """Every composition of 2 to :data:`DEPTH` escapes whose text is new (1 to :data:`DEPTH` with
    ``singles``), composed on the inner text (an escape's output without its outer quotes) and
    only on texts not seen before; ``known`` gains every text found."""
    frontier = {name: text for name, text in ((n, e(value)) for n, e in ESCAPES.items()) if text != value}
    seen = known
    seen.add(value)
    found: dict[str, str] = {}
    if singles:
        frontier = {name: text for name, text in frontier.items() if text not in seen}
        seen.update(frontier.values())
        found.update(frontier)
    for _ in range(DEPTH - 1):
        following: dict[str, str] = {}
        for name, text in frontier.items():
            for escape_name, escape in ESCAPES.items():
                new = escape(text)
                if new in seen:
                    continue
                seen.add(new)
                following[f"{name}>{escape_name}"] = new
        found.update(following)
        frontier = following
    return found


def leak_forms(value: str, *, username: str | None = None, min_length: int | None = None) -> dict[str, str]:
    """The ways ``value`` shows up in practice, by name; the one definition of the forms.

    Single escapes, every key always present (several may hold the same text): ``raw``; URL-quoted
    as ``Connection.get_uri`` (``quote``, ``safe=""``), SQLAlchemy's ``render_as_string``
    (``quote_sqlalchemy``, ``safe=" +"``) and form bodies (``quote_plus``); JSON-escaped (``json``,
    and ``json_unicode`` with ``ensure_ascii=False``); ``repr``-escaped as Python writes the value
    alone (``repr``), inside a ``'``-quoted repr (``repr_sq``: ``\\'``) and inside a ``"``-quoted one
    (``repr_dq``); HTML-escaped (``html``); unpadded ``base64`` and ``base64url`` (a padded
    encoding contains them); with a ``username``, ``basic`` and ``basic_url``: the same of
    ``username:value`` (HTTP Basic).

    Then, for a value of at most :data:`COMPOSE_LIMIT` characters, every composition of two or
    three escapes of :data:`ESCAPES` whose text is new (``json>repr_sq>json``: JSON first); and
    for a value of several lines (up to :data:`SIZE_CAP` characters), each line that
    :func:`qualifies` with ``min_length`` (``line 1``, ``line 2``, ...), with, up to
    :data:`COMPOSE_LIMIT` characters, its own escapes and their compositions (``line 2>json>repr_sq``):
    a line-oriented channel escapes each line as it would the whole value.

    Raises ``UnicodeEncodeError`` for a value that is not valid UTF-8 text (lone surrogates).
    """
    if min_length is None:
        min_length = default_min_length()
    found = _singles(value, username)
    composed = len(value) <= COMPOSE_LIMIT
    seen = set(found.values())
    if composed:
        found.update(_compositions(value, seen))
    if len(value) <= SIZE_CAP:
        lines = value.splitlines()
        if len(lines) > 1:
            # Line-oriented channels carry a multi-line value one line at a time, where the whole
            # value never matches; a line that would not qualify as a secret alone is not searched.
            for number, line in enumerate(lines, 1):
                if not qualifies(line, min_length):
                    continue
                found[f"line {number}"] = line
                if composed:
                    escaped = _compositions(line, seen, singles=True)
                    found.update({f"line {number}>{name}": text for name, text in escaped.items()})
    return found


def forms(value: str, *, username: str | None = None, min_length: int | None = None) -> tuple[str, ...]:
    """The distinct forms of :func:`leak_forms` that qualify, raw first."""
    if min_length is None:
        min_length = default_min_length()
    found = leak_forms(value, username=username, min_length=min_length).values()
    return tuple(form for form in dict.fromkeys(found) if qualifies(form, min_length))


def masked_forms(value: str, *, username: str | None = None, min_length: int | None = None) -> tuple[str, ...]:
    """The bounded subset handed to Airflow's masker, which recompiles its whole alternation on
    every call: the raw value, its single escapes and lines for a value of at most
    :data:`AIRFLOW_FORMS_LIMIT` characters; the raw value alone up to :data:`SIZE_CAP`; nothing
    above (the in-process engine masks those). Never the compositions."""
    if min_length is None:
        min_length = default_min_length()
    if len(value) > SIZE_CAP:
        return ()
    if len(value) > AIRFLOW_FORMS_LIMIT:
        return (value,) if qualifies(value, min_length) else ()
    found = _singles(value, username)
    lines = value.splitlines()
    texts = list(found.values()) + (lines if len(lines) > 1 else [])
    return tuple(form for form in dict.fromkeys(texts) if qualifies(form, min_length))


__all__ = [
    "AIRFLOW_FORMS_LIMIT",
    "COMPOSE_LIMIT",
    "DEPTH",
    "ESCAPES",
    "SIZE_CAP",
    "forms",
    "leak_forms",
    "masked_forms",
    "qualifies",
]
