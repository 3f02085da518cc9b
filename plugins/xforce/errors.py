"""One error type per failure kind.

Each carries a short machine-readable ``kind`` that the ledger stores beside the message.
"""

from __future__ import annotations


class XforceError(Exception):
    """Base class of every error the hub raises on purpose."""

    kind = "error"


class ConfigError(XforceError):
    """The force registry, a contract or a setting is wrong."""

    kind = "config"


class UnsafePathError(XforceError):
    """A landing name escapes its folder (``..``, absolute path, symlink) or names an unknown force."""

    kind = "unsafe_path"


class ExtractError(XforceError):
    """An extract cannot be read at all (empty, corrupt gzip, wrong header, wrong encoding).

    The raw copy is kept; the ledger records the message; no row of this file publishes.
    """

    kind = "unreadable"


class ValidatorError(XforceError):
    """Great Expectations could not run: its process ended, or GX itself failed on a suite."""

    kind = "validator"


class NightBusyError(XforceError):
    """Another run holds this night (its lease in the ledger has not expired): one run per night at a time."""

    kind = "night_busy"
