"""Redaction of free text that is shown to people: plate-like strings become ``[plate]``, UK phone
numbers ``[phone]``. Used wherever a name or a message from a file may be echoed (reader errors,
schema-drift reports).
"""

from __future__ import annotations

import re

# Current (2001-) format AB12 CDE in any case; prefix (A123 BCD) and suffix (ABC 123D) formats in upper
# case only, so that road names such as "A14" or "B1085" are not taken for plates. Dateless and
# Northern Irish marks ("ABC 123") are indistinguishable from ordinary text and are not matched.
_PLATE_RE = re.compile(
    r"(?<![A-Za-z0-9])(?:(?i:[A-Z]{2}[0-9]{2}\s?[A-Z]{3})|[A-Z][0-9]{1,3}\s?[A-Z]{3}|[A-Z]{3}\s?[0-9]{1,3}[A-Z])"
    r"(?![A-Za-z0-9])"
)
# UK numbers: +44, 0044 or 0, then 9-10 digits in groups separated by spaces, dots or hyphens, optionally (0...).
_PHONE_RE = re.compile(r"(?<![\w+])(?:(?:\+|00)44\s?(?:\(0\)\s?)?|\(?0)[0-9]{2,5}\)?(?:[\s.-]?[0-9]{2,4}){1,3}(?![\w])")
PLATE_MARK, PHONE_MARK = "[plate]", "[phone]"


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if text.startswith(("+", "00")):  # +44 / 0044, perhaps with (0): national number is 0 + the rest
        digits = "0" + digits[2 if text.startswith("+") else 4 :].removeprefix("0")
    return PHONE_MARK if digits.startswith("0") and len(digits) in (10, 11) else text


def redact_text(text: str | None) -> str | None:
    """Replace plate-like strings by ``[plate]`` and UK phone numbers by ``[phone]``."""
    if text is None:
        return None
    text = _PHONE_RE.sub(_phone, text)
    return _PLATE_RE.sub(PLATE_MARK, text)
