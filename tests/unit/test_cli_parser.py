"""The command line's help, error lines and exit-code rules, read in-process (no subprocess)."""

from __future__ import annotations

import argparse

import pytest

from xforce import cli
from xforce.cli_console import FAILED, OK, USAGE, CliError, explain, night_summary, verdict
from xforce.errors import ConfigError, ExtractError, NightBusyError, XforceError

pytestmark = pytest.mark.unit


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_subcommand_and_option_has_help_and_an_example() -> None:
    parser = cli.build_parser()
    subs = _subparsers(parser)
    assert set(subs) == set(cli.EXAMPLES)
    helped = {a.dest: a.help for a in parser._actions if not isinstance(a, argparse._SubParsersAction)}
    assert all(helped.values()), helped
    for name, sub in subs.items():
        assert sub.description, name
        assert sub.epilog and f"xforce {name}" in sub.epilog, f"{name} has no example"
        for action in sub._actions:
            assert action.help and action.help != argparse.SUPPRESS, f"xforce {name} {action.option_strings}"
        assert "example:" in sub.format_help()


def test_verbose_and_quiet_go_before_or_after_the_subcommand() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["-v", "status", "--date", "2026-11-27"]).verbose is True
    assert parser.parse_args(["status", "-q", "--date", "2026-11-27"]).quiet is True
    plain = parser.parse_args(["status", "--date", "2026-11-27"])
    assert (plain.verbose, plain.quiet, plain.json) == (False, False, False)


def test_a_usage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--date", "27/11/2026"])
    assert stop.value.code == USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a date" in err and "xforce run --help" in err


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (CliError("x", USAGE), USAGE),
        (ConfigError("unknown force 'yorkshire'"), USAGE),
        (XforceError("unknown token"), USAGE),
        (NightBusyError("night held"), FAILED),
        (ExtractError("empty file"), FAILED),
        (RuntimeError("boom\nsecond line"), FAILED),
    ],
)
def test_expected_failures_map_to_one_line_and_their_exit_code(exc: BaseException, code: int) -> None:
    got, line = explain(exc)
    assert got == code and "\n" not in line


def _row(force: str, dataset: str, status: str) -> dict[str, object]:
    return {"force": force, "dataset": dataset, "status": status, "received": 3, "published": 2, "quarantined": 1}


def test_failed_extracts_fail_the_run_and_quarantined_or_missing_do_not() -> None:
    ok = night_summary([_row("kent", "incidents", "published"), _row("kent", "seizures", "quarantined")])
    code, lines = verdict(ok, "success", "2026-11-27", "/landing")
    assert code == OK and "kent/seizures" in lines[0]
    failed = night_summary([_row("kent", "incidents", "failed"), _row("kent", "seizures", "missing")])
    code, lines = verdict(failed, "success", "2026-11-27", "/landing")
    assert code == FAILED and "kent/incidents" in lines[0]
    empty = night_summary([_row("kent", "incidents", "missing"), _row("kent", "seizures", "missing")])
    code, lines = verdict(empty, "success", "2026-11-27", "/landing")
    assert code == FAILED and "xforce generate --date 2026-11-27 --out /landing" in lines[0]
    assert verdict(ok, "failed", "2026-11-27", "/landing")[0] == FAILED
