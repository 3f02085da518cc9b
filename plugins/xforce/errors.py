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


class KeyMismatchError(ConfigError):
    """The configured plate key is not the key its version label was first used with (the ledger
    keeps each version's fingerprint): its tokens would silently stop joining earlier nights' tokens."""

    kind = "key_mismatch"


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


class VolatileLedgerError(XforceError):
    """The ledger would not outlive the process or the machine's next clean-up (in-memory SQLite, a
    file in the temporary folder or on a RAM disk): re-identification is refused, its audit must last."""

    kind = "volatile_ledger"


class ReidentificationRefused(XforceError):
    """A re-identification request without a usable purpose or requester (too few letters once
    invisible characters are removed): refused, and the refusal is audited."""

    kind = "reidentification_refused"


class ProcessingError(XforceError):
    """Processing an extract raised something the hub did not expect (a library's error, a bug).

    Its message is the original's with any content withheld (``xforce.redaction.describe_error``):
    a library's error may quote a value, and a value may be a plate. Transient: Airflow retries it."""
