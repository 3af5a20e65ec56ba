"""Where an export with `--output PATH` writes: checks on PATH (a link another user planted,
the database itself), and the new file beside it that is renamed over PATH once complete."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

from contacts_api.errors import UserError
from contacts_api.storage.sqlite_setup import sqlite_files


def refuse_a_planted_link(output: Path) -> None:
    """A UserError when a link on the way to `output` (PATH itself, a folder on its path, a
    link a link leads to) is another user's in a shared folder (sticky and world-writable, as
    /tmp): the kernel's protected_symlinks rule, which resolve() passes by (it reads links,
    it opens nothing). Followed, it had the contacts renamed over a file of ours the link
    named, or written where its maker could read them."""
    link = _planted_link(output)
    if link is not None:
        raise UserError(
            f"cannot write {output}: {link} is a link another user made in a shared folder"
        )


def _planted_link(path: Path) -> Path | None:
    """The first link met resolving `path`, part by part as the kernel does, that another user
    made in a sticky world-writable folder; None when there is none (or the path stops
    existing: what follows is only a name)."""
    folder = Path(path.anchor) if path.is_absolute() else Path.cwd()
    parts = list(path.parts[1:] if path.is_absolute() else path.parts)
    links = 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            folder = folder.parent
            continue
        here = folder / part
        try:
            found = os.lstat(here)
        except OSError:
            return None
        if not stat.S_ISLNK(found.st_mode):
            folder = here
            continue
        links += 1
        try:
            holder = os.stat(folder)
            target = Path(os.readlink(here))
        except OSError:
            return None
        shared = holder.st_mode & stat.S_ISVTX and holder.st_mode & stat.S_IWOTH
        if shared and found.st_uid not in (os.geteuid(), holder.st_uid):
            return here
        if links > 40:  # a loop: the export's own open says so
            return None
        if target.is_absolute():
            folder = Path(target.anchor)
            parts = list(target.parts[1:]) + parts
        else:
            parts = list(target.parts) + parts
    return None


def refuse_the_database(output: Path, database_url: str) -> None:
    """A UserError when `output` is the SQLite database or a file kept beside it (its
    journals, the writers' lock): the rename replaced every account's contacts with one
    account's export. By name and, where both exist, as the same file (a case-insensitive
    file system, a link)."""
    for kept in sqlite_files(database_url):
        same = output == kept.resolve()
        with contextlib.suppress(OSError):
            same = same or os.path.samefile(output, kept)
        if same:
            raise UserError(
                f"cannot write {output}: it is the database or a file SQLite keeps beside it"
                " (CONTACTS_API_DATABASE_URL)"
            )


def open_to_replace(output: Path) -> tuple[IO[str], Path]:
    """A new file beside `output`, opened for writing, to be renamed over it once complete.

    Made by mkstemp (a name of its own, created exclusively): at the fixed `PATH.partial` a
    link or a file someone else left there was written through, and the contacts went into
    their file. It gets the permissions (and, where allowed, the owner) of `output` when that
    exists — renamed over a 0600 file, it once left the contacts readable by every local
    user — and the umask's for a new file.
    """
    fd, name = tempfile.mkstemp(prefix=f"{output.name}.", suffix=".partial", dir=output.parent)
    partial = Path(name)
    try:
        out = open(fd, "w", newline="", encoding="utf-8")  # noqa: SIM115
    except BaseException:
        os.close(fd)
        partial.unlink(missing_ok=True)
        raise
    try:
        try:
            existing = os.stat(output)
        except FileNotFoundError:
            os.fchmod(fd, 0o666 & ~_umask())
        else:
            with contextlib.suppress(PermissionError):  # only root may give a file away
                os.fchown(fd, existing.st_uid, existing.st_gid)
            os.fchmod(fd, stat.S_IMODE(existing.st_mode))
    except BaseException:
        out.close()
        partial.unlink(missing_ok=True)
        raise
    return out, partial


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
