"""The redaction engine: what is searched for (:mod:`.forms`), one automaton for every form of
every secret (:mod:`.matcher`), the walk through values (:mod:`.walk`) and the registry with its
scopes (:mod:`.registry`). ``cyberark_ops.scrub`` is its public face; see ``docs/scrubbing.md``."""

from cyberark_ops.redaction.forms import forms, leak_forms, masked_forms, qualifies
from cyberark_ops.redaction.matcher import REPLACEMENT, Matcher
from cyberark_ops.redaction.registry import MIN_LENGTH_SETTING, Registry, ScrubError, SecretTooShort

__all__ = [
    "MIN_LENGTH_SETTING",
    "REPLACEMENT",
    "Matcher",
    "Registry",
    "ScrubError",
    "SecretTooShort",
    "forms",
    "leak_forms",
    "masked_forms",
    "qualifies",
]
