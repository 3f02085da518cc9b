"""Every change xforce makes to Great Expectations' internals, in one place, behind a version guard.

The GX worker (``xforce.quality.gxworker``) changes two things inside GX for speed; neither is public
API, so each is checked before it is changed (and :func:`hide_progress_bars` reaches a setting GX
exports under no public name):

* :func:`disable_batch_fingerprint`: GX fingerprints every in-memory batch by hashing every cell
  (``batch_markers["pandas_data_fingerprint"]``, which the hub never reads); it cost as much as the
  expectations themselves. ``PandasExecutionEngine.get_batch_data_and_markers`` hashes a frame only
  when its ``memory_usage().sum()`` is under the module's ``HASH_THRESHOLD``: a zero threshold turns
  the fingerprint off.
* :func:`keep_configurations`: GX rebuilds an expectation's configuration (a pydantic ``dict()`` and
  a new object) each time it reads ``Expectation.configuration``, some 140 times per expectation per
  validation: about a third of a call's time. The first one built for an expectation object is kept
  until :func:`forget_configurations` (``gxworker.execute`` calls it when a call ends, in a
  ``finally``). GX builds its expectation objects afresh for a call, from the suite, and does not
  change them.

Before changing anything, each checks that the installed GX is one these changes were read against
(:data:`CHECKED_VERSIONS`) and that what it replaces is where it expects it, and otherwise raises
:class:`~xforce.errors.ValidatorError` naming the attribute and the GX version, having changed
nothing. Upgrading GX: re-read those two places in GX's source, run tests/unit/test_gx_compat.py
(it checks each change by its effect on GX), then widen :data:`CHECKED_VERSIONS`.

GX itself is imported only when a function here is called: importing this module stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from xforce.errors import ValidatorError

if TYPE_CHECKING:
    from types import ModuleType

#: The Great Expectations versions whose internals the changes below were checked against.
CHECKED_VERSIONS = ">=1.24.1,<1.25"

_ENGINE = "great_expectations.execution_engine.pandas_execution_engine"
_EXPECTATION = "great_expectations.expectations.expectation"

#: Configurations built during the current validation call, by ``id`` of their expectation (the
#: object is held too, so that its id cannot be reused by another one): see keep_configurations.
_configurations: dict[int, tuple[Any, Any]] = {}
#: The ``Expectation.configuration`` property installed by keep_configurations (None: not installed).
_kept: property | None = None


def gx_version() -> str:
    """The version of the Great Expectations this process imports."""
    import great_expectations

    return str(great_expectations.__version__)


def check_version() -> str:
    """The installed GX version, if it is one of :data:`CHECKED_VERSIONS`; else ValidatorError."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    version = gx_version()
    try:
        checked = SpecifierSet(CHECKED_VERSIONS).contains(Version(version), prereleases=False)
    except InvalidVersion:
        checked = False
    if not checked:
        raise ValidatorError(
            f"Great Expectations {version} is installed, but xforce.quality.gx_compat changes GX internals "
            f"checked against GX {CHECKED_VERSIONS} only: re-check them against this version "
            "(tests/unit/test_gx_compat.py) and update CHECKED_VERSIONS, or install a checked version"
        )
    return version


def _unusable(attribute: str, version: str, problem: str) -> ValidatorError:
    return ValidatorError(
        f"Great Expectations {version}: {attribute} {problem}; xforce.quality.gx_compat expects it "
        f"(as in GX {CHECKED_VERSIONS}) and has changed nothing"
    )


def _module(name: str, version: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise _unusable(name, version, f"cannot be imported ({exc})") from exc


def disable_batch_fingerprint() -> None:
    """Turn off GX's per-batch fingerprint of in-memory frames (``HASH_THRESHOLD = 0``)."""
    version = check_version()
    engine = _module(_ENGINE, version)
    attribute = f"{_ENGINE}.HASH_THRESHOLD"
    threshold = getattr(engine, "HASH_THRESHOLD", None)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise _unusable(attribute, version, "is missing or not a number")
    # The threshold only means something while the method that hashes a batch still reads it.
    reader = getattr(getattr(engine, "PandasExecutionEngine", None), "get_batch_data_and_markers", None)
    if "HASH_THRESHOLD" not in getattr(getattr(reader, "__code__", None), "co_names", ()):
        raise _unusable(attribute, version, "is not read by PandasExecutionEngine.get_batch_data_and_markers")
    engine.HASH_THRESHOLD = 0  # type: ignore[attr-defined]  # (checked above)


def keep_configurations() -> None:
    """Have ``Expectation.configuration`` build an expectation object's configuration once, then
    return that one object until :func:`forget_configurations`. Idempotent."""
    global _kept
    version = check_version()
    cls = getattr(_module(_EXPECTATION, version), "Expectation", None)
    attribute = f"{_EXPECTATION}.Expectation.configuration"
    current = vars(cls).get("configuration") if isinstance(cls, type) else None
    if current is not None and current is _kept:
        return
    if not isinstance(current, property) or current.fget is None:
        raise _unusable(attribute, version, "is missing or not a property")
    build = current.fget  # GX's own property, read once

    def configuration(self: Any) -> Any:
        held = _configurations.get(id(self))
        if held is None or held[0] is not self:  # the object is held too, so its id is not reused
            held = (self, build(self))
            _configurations[id(self)] = held
        return held[1]

    _kept = property(configuration)
    setattr(cls, "configuration", _kept)  # noqa: B010 (cls is GX's Expectation, found above)


def hide_progress_bars(context: Any) -> None:
    """No progress bars from ``context`` (a GX data context): GX has no public name for their setting."""
    base = _module("great_expectations.data_context.types.base", gx_version())
    context.variables.progress_bars = base.ProgressBarsConfig(globally=False, metric_calculations=False)


def forget_configurations() -> None:
    """Drop the configurations kept since the last call (the end of a validation call)."""
    _configurations.clear()
