"""The `contacts-api` command's entry point, kept light: loading the CLI's modules takes a
second or two on a slow machine, and a Ctrl-C meanwhile printed a traceback; now it exits
130 quietly, as a Ctrl-C later does (`cli.main`)."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from contacts_api.cli import main as run
    except KeyboardInterrupt:
        sys.exit(130)
    run()
