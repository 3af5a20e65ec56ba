"""`make bench` takes minutes: --help answers at once, and a mistyped option or setting stops
it before any server starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")} | settings
    return subprocess.run(
        [sys.executable, "-m", "bench.run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_help_lists_the_settings_and_runs_nothing() -> None:
    result = bench("--help")
    assert result.returncode == 0
    for name in ("BENCH_SECONDS", "BENCH_SEEDED_CONTACTS", "BENCH_WORKERS", "BENCH_STDERR"):
        assert name in result.stdout
    assert "empty database" not in result.stderr  # the first phase's progress line


def test_an_unknown_option_is_refused() -> None:
    result = bench("--seconds", "3")
    assert result.returncode == 2
    assert "unrecognized arguments: --seconds 3" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BENCH_SECONDS", "ten"),
        ("BENCH_SECONDS", "0"),
        ("BENCH_WORKERS", "0"),
        ("BENCH_SEEDED_CONTACTS", "-5"),
    ],
)
def test_a_setting_that_is_not_a_fit_number_is_refused(name: str, value: str) -> None:
    result = bench(**{name: value})
    assert result.returncode == 2
    assert f"{name} must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr
    assert "empty database" not in result.stderr


def test_the_import_benchmark_alone_refuses_a_row_count_that_is_not_one() -> None:
    for rows, message in (("many", "invalid int value"), ("0", "rows must be at least 1")):
        result = subprocess.run(
            [sys.executable, "-m", "bench.import_bench", rows],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert message in result.stderr
