"""What the hub may say about a file's content: never the content itself.

Two tools, for two uses:

* :func:`describe` names a value without showing it: its length and a short SHA-256 prefix
  (``<len 7, sha-256 3f1c0a9b2e4d>``). Every message the hub builds from a file (reader errors,
  schema drift, parser errors, the ledger's error and warning, manifests, XCom, logs, Data Docs)
  describes content this way, by position (record, byte offset), length, hash or column name.
  :func:`describe_name` is the column-name variant: a known column, or a safe identifier of
  bounded length that holds nothing plate-like, is shown; anything else is described.
  :func:`describe_error` keeps the leading parts of a library's error message that are known
  to hold no content ("CSV parse error", "Expected 7 columns, got 5") and describes the rest.
* :func:`redact_text` is the one redaction of text that must be shown to a person: plate-like
  strings become ``[plate]``, UK phone numbers ``[phone]``.

What is plate-like (``redact_text``), by design broader than the plate check itself
(``expectations/*.json``: current ``AB12CDE``, prefix ``A123BCD``, suffix ``ABC123D`` and the
dateless and Northern Irish ``[A-Z]{1,3}[0-9]{1,4}`` / ``[0-9]{1,4}[A-Z]{1,3}``):

* every alphanumeric run of 2 to 8 characters that holds both a letter and a digit, in any case
  (``AB12CDE``, ``nia7777``, ``1234AB``, ``1A2B3C4D``, and so also road numbers such as ``A14``
  and parts of timestamps such as ``27T01``). A run is bounded by characters that are not ASCII
  letters or digits; a plate glued into a longer run (``fooAB12CDE``) is not recognised. Runs
  of letters only or digits only are never touched, which is how column names (``camera_id``,
  ``plate``), words, and numbers survive;
* a plate written with one space: current format in any case (``ab12 cde``); prefix, suffix
  and dateless marks in upper case (``A123 BCD``, ``ABC 123D``, ``NIA 7777``, ``1234 AB``). In
  lower case those are ordinary words and numbers ("of 3", "in 2026") and are left alone,
  but their letters-and-digits half is still a run of its own only if it mixes both.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection

# A plate written with one space (or none): current format in any case; prefix, suffix and the
# dateless / Northern Irish marks in upper case only.
_SPACED_PLATE_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:(?i:[A-Z]{2}[0-9]{2}\s?[A-Z]{3})|[A-Z][0-9]{1,3}\s?[A-Z]{3}|[A-Z]{3}\s?[0-9]{1,3}[A-Z]"
    r"|[A-Z]{1,3}\s[0-9]{1,4}|[0-9]{1,4}\s[A-Z]{1,3})(?![A-Za-z0-9])"
)
# Any run of 2-8 ASCII letters and digits holding at least one of each.
_MIXED_RUN_RE = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z]*[0-9])(?=[0-9]*[A-Za-z])[A-Za-z0-9]{2,8}(?![A-Za-z0-9])")
# UK numbers: +44, 0044 or 0, then 9-10 digits in groups separated by spaces, dots or hyphens, optionally (0...).
_PHONE_RE = re.compile(r"(?<![\w+])(?:(?:\+|00)44\s?(?:\(0\)\s?)?|\(?0)[0-9]{2,5}\)?(?:[\s.-]?[0-9]{2,4}){1,3}(?![\w])")
PLATE_MARK, PHONE_MARK = "[plate]", "[phone]"

#: Hex digits of the SHA-256 shown by :func:`describe`: longer than any plate-like run, so a
#: description survives :func:`redact_text` unchanged.
HASH_CHARS = 12
#: The longest column name shown as it is (a longer one is described).
MAX_NAME_CHARS = 40
# words of letters, digits and underscores, each starting with a letter or underscore, joined by
# one dot (JSON key paths) or one space (police.uk's "Crime ID")
_IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[. ][A-Za-z_][A-Za-z0-9_]*)*")
#: Leading parts of library error messages (split at ": ") known to hold no content of the file.
SAFE_ERROR_PARTS = tuple(
    re.compile(p)
    for p in (
        r"CSV parse error",
        r"Row #\d+",
        r"In CSV column #\d+",
        r"Expected \d+ columns?, got \d+",
        r"straddling object straddles two block boundaries \(try to increase block size\?\)",
        r"Empty CSV file or block",
        r"cannot infer number of columns",
        r"CSV conversion error to \w+",
        r"Error -?\d+ while (?:de)?compressing data",
        r"Error",
        # Great Expectations naming a column of the hub's own frame (the suites' names, not the file's)
        r'The column "[a-z_][a-z0-9_]{0,39}" in BatchData does not exist\.',
    )
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def describe(value: str | bytes | None) -> str:
    """A value named without being shown: ``<len 7, sha-256 3f1c0a9b2e4d>`` (characters for text,
    bytes for bytes; the hash of the UTF-8 bytes, a lone surrogate kept as it is)."""
    if value is None:
        return "<null>"
    data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return f"<len {len(value)}, sha-256 {_sha(data)}>"


def is_safe_name(name: str) -> bool:
    """A column name that can be shown: an identifier of at most ``MAX_NAME_CHARS`` characters
    (words joined by one dot or space) with nothing plate-like or phone-like in it."""
    return len(name) <= MAX_NAME_CHARS and bool(_IDENTIFIER_RE.fullmatch(name)) and redact_text(name) == name


def describe_name(name: str, known: Collection[str] = (), position: int | None = None) -> str:
    """A column name for a message: ``'camera_id'`` when known or safe (:func:`is_safe_name`),
    otherwise by position, length and hash (``column 3 <len 7, sha-256 …>``)."""
    if name in known or is_safe_name(name):
        return repr(name)
    where = f"column {position} " if position is not None else ""
    return f"{where}{describe(name)}"


def describe_names(names: list[str], known: Collection[str] = (), limit: int = 20) -> str:
    """The cells of a header line for a message: each by :func:`describe_name` (the first
    ``limit``); when none is a known column the line is probably a record, and only counted."""
    if known and not set(names) & set(known):
        return f"{len(names)} cell(s), none a column of the contract (no header line?), names withheld"
    shown = [describe_name(n, known, i) for i, n in enumerate(names[:limit], 1)]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(shown) + more


def describe_error(exc: BaseException | str) -> str:
    """A library's error message with its content withheld: the type, the leading parts (split
    at ``": "``) that match :data:`SAFE_ERROR_PARTS`, then the rest by length and hash."""
    text = exc if isinstance(exc, str) else str(exc)
    head = "" if isinstance(exc, str) else type(exc).__name__
    kept: list[str] = []
    parts = text.split(": ")
    while parts and any(p.fullmatch(parts[0].strip()) for p in SAFE_ERROR_PARTS):
        kept.append(parts.pop(0).strip())
    rest = ": ".join(parts)
    out = [head] if head else []
    if kept:
        out.append(": ".join(kept))
    if rest:
        out.append(f"(rest of the message withheld: {describe(rest)})")
    return " ".join(out) if out else describe(text)


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if text.startswith(("+", "00")):  # +44 / 0044, perhaps with (0): national number is 0 + the rest
        digits = "0" + digits[2 if text.startswith("+") else 4 :].removeprefix("0")
    return PHONE_MARK if digits.startswith("0") and len(digits) in (10, 11) else text


def redact_text(text: str | None) -> str | None:
    """Replace plate-like strings by ``[plate]`` and UK phone numbers by ``[phone]`` (see the module)."""
    if text is None:
        return None
    text = _PHONE_RE.sub(_phone, text)
    text = _SPACED_PLATE_RE.sub(PLATE_MARK, text)
    return _MIXED_RUN_RE.sub(PLATE_MARK, text)
