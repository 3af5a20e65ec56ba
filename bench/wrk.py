"""Drive a running server with wrk and read back requests/s, latency percentiles and errors."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).parent
DURATION_S = 10
THREADS = 2
CONNECTIONS = 64


@dataclass
class WrkResult:
    route: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    requests: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian package), then make bench")
    return path


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse(route: str, output: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    non_2xx_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    non_2xx = int(non_2xx_match.group(1)) if non_2xx_match else 0
    if errors:
        non_2xx += sum(int(n) for n in re.findall(r"\d+", errors.group(0)))
    return WrkResult(route, rps, p50, p99, non_2xx, total)


def run(route: str, url: str, script: str | None = None, *args: str) -> WrkResult:
    """One bounded wrk run (loopback only)."""
    output = subprocess.run(
        command(url, script, *args), capture_output=True, text=True, check=True,
        timeout=DURATION_S + 30,
    ).stdout  # fmt: skip
    return parse(route, output)


def command(url: str, script: str | None = None, *args: str) -> list[str]:
    """The wrk command line of one bounded run (loopback only)."""
    assert url.startswith("http://127.0.0.1:"), "benchmarks only target loopback"
    command = [
        require_wrk(),
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{DURATION_S}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    if script:
        command += ["-s", str(HERE / script)]
    command.append(url)
    if args:
        command += ["--", *args]
    return command
