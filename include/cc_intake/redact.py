"""Personal-data redaction: the one place deciding what a log, an e-mail or a page may show.

Pure module (no Airflow). Every text that leaves a task (log, e-mail, proof page, CRM error
excerpt, ``make check`` output) goes through these functions; no other module re-types a rule:

- :func:`mask_phone`: phone numbers masked to country prefix + last two digits (contract §7);
- :func:`redact_secrets`: URL passwords, tokens, API keys, ``Authorization`` values;
- :func:`redact_values`: the known secret values of a connection (what a session carries);
- :func:`sanitize`: secrets redacted, then phones masked, then the length capped;
- :func:`one_line`: control characters (CR, LF, …) folded to a space, for mail headers and
  single-line excerpts.

Phone-number heuristic of :func:`mask_phone` (precision over recall only where a date or an id
would otherwise be mangled):

- international, ``+`` then 8 to 15 digits, single spaces, dots or dashes allowed between digits:
  ``+225 07 12 34 56 78`` → ``+225 ******78``;
- international, ``00`` then a non-zero digit and 8 to 15 digits in all (same separators):
  ``0022507123456`` → ``+225 ******56``;
- local, 10 digits starting with ``0``, either contiguous or in pairs with one repeated separator
  (``0712345678``, ``07 12 34 56 78``, ``07.12.34.56.78``, ``07-12-34-56-78``) → ``******78``.

The country prefix is cut with the ITU rule (1 and 7 are one digit, a fixed list is two digits,
every other code three). A candidate touching a letter or another digit is left alone, so ids
like ``AG0712345678`` or UUIDs stay intact; an underscore is a boundary, so a caller number inside
a recording name (``…_0712345678.wav``) is masked. Dates (``20261125``, ``2026-11-25``), ISO
times and offsets (``+00:00``) and numbers not starting with ``0`` or ``+`` (reference numbers,
sizes, epoch times) never match. Known misses, accepted: national numbers written without their
leading ``0`` and local formats other than ten digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# --------------------------------------------------------------------------- phones

_SEP = r"[ .\-]?"
_INTL_PLUS_RE = re.compile(rf"(?<![0-9A-Za-z+])\+(?P<num>\d(?:{_SEP}\d){{7,14}})(?![0-9A-Za-z])")
_INTL_00_RE = re.compile(
    rf"(?<![0-9A-Za-z+])00{_SEP}(?P<num>[1-9](?:{_SEP}\d){{7,14}})(?![0-9A-Za-z])"
)
_LOCAL_RE = re.compile(
    r"(?<![0-9A-Za-z+])(?P<num>0\d(?P<sep>[ .\-]?)\d\d(?P=sep)\d\d(?P=sep)\d\d(?P=sep)\d\d)"
    r"(?![0-9A-Za-z])"
)
# Two-digit ITU country codes; 1 and 7 are one digit; every other code has three digits.
_CC2 = frozenset(
    re.findall(
        r"\d\d",
        "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 "
        "60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98",
    )
)
_STARS = "******"


def _country_code(digits: str) -> str:
    if digits[0] in "17":
        return digits[0]
    if digits[:2] in _CC2:
        return digits[:2]
    return digits[:3]


def _mask_international(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match["num"])
    return f"+{_country_code(digits)} {_STARS}{digits[-2:]}"


def _mask_local(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match["num"])
    return f"{_STARS}{digits[-2:]}"


def mask_phone(text: str) -> str:
    """Mask phone numbers in ``text`` to country prefix + last two digits (see module doc)."""
    text = _INTL_PLUS_RE.sub(_mask_international, text)
    text = _INTL_00_RE.sub(_mask_international, text)
    return _LOCAL_RE.sub(_mask_local, text)


# --------------------------------------------------------------------------- secrets

_SECRET_WORDS = (
    r"password|passwd|pwd|passphrase|secret|client_secret|token|access_token|refresh_token"
    r"|api[_-]?key|x-api-key|apikey|authorization|signature|sig|private_key"
)
_URL_USERINFO_RE = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/\s:@]+:[^/\s@]*@")
_KEY_VALUE_RE = re.compile(
    rf"(?i)(?P<key>\b(?:{_SECRET_WORDS}))(?P<q>[\"']?)(?P<sep>\s*[=:]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|(?:(?:bearer|basic|token)\s+)?[^\s&;,\"'}]+)"
)
_AUTH_SCHEME_RE = re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+(?!\*\*\*)[A-Za-z0-9._~+/=\-]{8,}")
REDACTED = "***"


def redact_secrets(text: str) -> str:
    """Redact credentials that error texts sometimes carry: URL passwords, tokens, API keys."""
    text = _URL_USERINFO_RE.sub(rf"\g<scheme>{REDACTED}@", text)
    text = _KEY_VALUE_RE.sub(rf"\g<key>\g<q>\g<sep>{REDACTED}", text)
    return _AUTH_SCHEME_RE.sub(rf"\g<scheme> {REDACTED}", text)


def redact_values(text: str, values: Iterable[str]) -> str:
    """``text`` with every occurrence of the known secret ``values`` replaced by ``***``.

    For the values a connection carries (a password, a bearer token): whatever shape the
    message that echoes them has. The longest first, so a value containing another goes whole.
    """
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


# --------------------------------------------------------------------------- whole texts

_MAX_TEXT = 3000


def sanitize(value: object, *, limit: int = _MAX_TEXT) -> str:
    """How every free text reaches an e-mail: secrets redacted, phones masked, length capped."""
    text = mask_phone(redact_secrets(str(value)))
    if len(text) > limit:
        text = text[:limit].rstrip() + " … (tronqué : voir le journal de la tâche)"
    return text


# Line breaks and other control characters (C0, DEL, C1, the Unicode line separators).
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str) -> str:
    """``text`` fit for a mail header: control characters (CR, LF…) become one space.

    A header value with CR/LF is refused by the mail library, or worse, read as a second header.
    """
    return _CONTROL_RE.sub(" ", text)
