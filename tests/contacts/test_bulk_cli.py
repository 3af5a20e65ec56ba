"""`contacts-api import` / `export` as an operator runs them: stdout, stderr, exit status."""

from __future__ import annotations

import asyncio
import errno
import gzip
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from contacts_api.cli import app
from contacts_api.contacts.bulk_csv_layout import CsvLayout
from contacts_api.contacts.bulk_files import SAMPLE_BYTES
from contacts_api.contacts.bulk_output import ErrorReport
from contacts_api.storage.engine import Database
from tests.factories import count_contacts, new_account


async def run_cli(database_url: str, *args: str) -> Result:
    """The command in a thread (it runs its own event loop), against the test database."""
    runner = CliRunner()
    env = {"CONTACTS_API_DATABASE_URL": database_url}
    return await asyncio.to_thread(runner.invoke, app, list(args), env=env)


async def exported_contacts(database_url: str) -> list[dict[str, Any]]:
    """Account acme's contacts, as `contacts-api export --format jsonl` writes them."""
    exported = await run_cli(database_url, "export", "--account", "acme", "--format", "jsonl")
    assert exported.exit_code == 0, exported.stderr
    return [json.loads(line) for line in exported.stdout.splitlines()]


async def import_into_acme(database_url: str, path: Path) -> Result:
    """`contacts-api import PATH --account acme`."""
    return await run_cli(database_url, "import", str(path), "--account", "acme")


async def test_import_prints_only_the_summary_and_exits_0_with_failed_rows(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_text("Email,Phone\na@example.com,\nbad@,\n,+15550001111\n")
    result = await import_into_acme(database_url, path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "created 2, updated 0, failed 1, unchanged 0\n"
    assert "leads.csv.errors.csv" in result.stderr
    assert (tmp_path / "leads.csv.errors.csv").read_text().splitlines() == [
        "row,field,message,original",
        '3,email,Invalid email format,"bad@,"',
    ]

    assert [c["email"] for c in await exported_contacts(database_url)] == ["a@example.com", None]
    out = tmp_path / "out.csv"
    to_file = await run_cli(database_url, "export", "--account", "acme", "--output", str(out))
    assert to_file.exit_code == 0 and to_file.stdout == ""
    assert out.read_text().splitlines()[0].startswith("id,accountId,userId,email,")


async def test_user_errors_exit_1_with_one_line(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    await new_account(db)
    good = tmp_path / "ok.csv"
    good.write_text("email\na@example.com\n")
    binary = tmp_path / "photo.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    prose = tmp_path / "notes.txt"
    prose.write_text("Dear team,\nhere are the leads we talked about.\n")
    array = tmp_path / "leads.json"
    array.write_text('[{"email": "a@example.com"}]')
    fifo = tmp_path / "leads.fifo"
    os.mkfifo(fifo)
    odd_name = os.fsencode(tmp_path) + b"/leads\xe9.csv"
    with open(odd_name, "wb") as f:
        f.write(b"email\na@example.com\n")
    pretty = tmp_path / "leads-pretty.json"
    pretty.write_text('{\n  "contacts": [\n    {"email": "a@example.com"}\n  ]\n}\n')
    # The API's list answer saved as it is: one failed row and exit status 0, once.
    response = tmp_path / "response.json"
    response.write_text('{"data":{"count":1,"contacts":[{"email":"a@example.com"}]}}\n')
    cases = {
        "an API response saved as it is": ["import", str(response), "--account", "acme"],
        "a JSON array": ["import", str(array), "--account", "acme"],
        "a pretty-printed JSON document": ["import", str(pretty), "--account", "acme"],
        "a named pipe (once: a hang)": ["import", str(fifo), "--account", "acme"],
        "a name that is not UTF-8": ["import", os.fsdecode(odd_name), "--account", "acme"],
        "missing file": ["import", str(tmp_path / "nope.csv"), "--account", "acme"],
        "a directory": ["import", str(tmp_path), "--account", "acme"],
        "binary": ["import", str(binary), "--account", "acme"],
        "no known columns": ["import", str(prose), "--account", "acme"],
        "unknown account": ["import", str(good), "--account", "nobody"],
        "export, unknown account": ["export", "--account", "nobody"],
        "export to a directory": ["export", "--account", "acme", "--output", str(tmp_path)],
        # A name over the system's 255 bytes: a traceback from Path.is_file()/is_dir().
        "a name too long": ["import", str(tmp_path / ("a" * 300 + ".csv")), "--account", "acme"],
        "export, a name too long": [
            "export",
            "--account",
            "acme",
            "--output",
            str(tmp_path / ("a" * 300)),
        ],
    }
    for name, args in cases.items():
        result = await run_cli(database_url, *args)
        assert result.exit_code == 1, (name, result.stdout, result.stderr)
        assert result.stdout == "", name
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, name
        assert "Traceback" not in result.stderr


async def test_a_file_it_may_not_read_is_one_line_and_exit_1(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """click's own readability check answered with a usage box and exit 2; it also refused
    to export over a file one may write but not read."""
    await new_account(db)
    path = tmp_path / "locked.csv"
    path.write_text("email\na@example.com\n")
    path.chmod(0)
    write_only = tmp_path / "drop-box.csv"
    write_only.touch(mode=0o200)
    command = [sys.executable, "-m", "contacts_api"]
    if os.geteuid() == 0:  # root reads anything: run without the two capabilities that allow it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root, and no setpriv (util-linux) to drop read capabilities")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    env = {**os.environ, "CONTACTS_API_DATABASE_URL": database_url}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    result = await asyncio.to_thread(run, "import", str(path), "--account", "acme")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"error: cannot read {path}: Permission denied\n"
    exported = await asyncio.to_thread(
        run, "export", "--account", "acme", "--output", str(write_only)
    )
    assert exported.returncode == 0, exported.stderr
    write_only.chmod(0o600)
    assert write_only.read_text().startswith("id,accountId,")


async def test_a_failed_export_leaves_the_output_file_as_it_was(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    await new_account(db)
    (tmp_path / "exports").mkdir()
    out = tmp_path / "exports" / "contacts.csv"
    out.write_text("last week's export\n")
    failed = await run_cli(database_url, "export", "--account", "nobody", "--output", str(out))
    assert failed.exit_code == 1
    assert out.read_text() == "last week's export\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["contacts.csv"]  # no partial left
    done = await run_cli(database_url, "export", "--account", "acme", "--output", str(out))
    assert done.exit_code == 0, done.stderr
    assert out.read_text().startswith("id,accountId,")
    assert sorted(p.name for p in out.parent.iterdir()) == ["contacts.csv"]


async def test_an_export_over_a_file_keeps_its_permissions(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """The new file was renamed over the old one with the umask's 0644: a 0600 file of
    contacts became readable by every local user."""
    await new_account(db)
    private = tmp_path / "contacts.csv"
    private.write_text("last week's export\n")
    private.chmod(0o600)
    group = tmp_path / "team.jsonl"
    group.write_text("")
    group.chmod(0o640)
    for path, mode in ((private, 0o600), (group, 0o640)):
        done = await run_cli(database_url, "export", "--account", "acme", "--output", str(path))
        assert done.exit_code == 0, done.stderr
        assert path.read_text().startswith("id,accountId,")
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


async def test_an_export_over_the_sqlite_database_itself_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--output contacts.db` renamed one account's CSV over the database: every account gone,
    and the next command said `file is not a database`. Named as the URL names it or not
    (the default URL is relative), or through a link."""
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///./contacts.db"
    assert (await run_cli(url, "db", "upgrade")).exit_code == 0
    assert (await run_cli(url, "accounts", "create", "acme")).exit_code == 0
    (tmp_path / "link.csv").symlink_to(tmp_path / "contacts.db")
    names = ["contacts.db", f"{tmp_path}/sub/../contacts.db", "link.csv", "contacts.db-wal"]
    for name in [*names, "contacts.db-writers.lock"]:
        (tmp_path / "sub").mkdir(exist_ok=True)
        done = await run_cli(url, "export", "--account", "acme", "--output", name)
        assert done.exit_code == 1, name
        assert done.stderr.endswith(
            ": it is the database or a file SQLite keeps beside it (CONTACTS_API_DATABASE_URL)\n"
        ), name
    listed = await run_cli(url, "keys", "list", "--account", "acme")
    assert listed.exit_code == 0, listed.stderr


async def test_an_export_follows_no_link_another_user_made_in_a_shared_folder(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """A link at PATH in /tmp, made by someone else, to a file of ours: the export was renamed
    over that file (Python resolves links by reading them, which the kernel's
    protected_symlinks rule does not guard). Our own link there is still followed."""
    if os.geteuid() != 0:
        pytest.skip("a link owned by another user can be made by root only")
    await new_account(db)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    victim = tmp_path / "bashrc"
    victim.write_text("important\n")
    planted = shared / "out.csv"
    planted.symlink_to(victim)
    os.lchown(planted, 12345, 12345)  # another user's
    home = tmp_path / "home"
    home.mkdir()
    (home / "out.csv").write_text("important\n")
    (shared / "dir").symlink_to(home)  # a folder on the way: theirs
    os.lchown(shared / "dir", 12345, 12345)
    (tmp_path / "mine.csv").symlink_to(planted)  # ours, leading to theirs
    os.mkfifo(home / "pipe")  # written in place, not renamed over: checked all the same
    for output, link in (
        (planted, planted),
        (shared / "dir" / "out.csv", shared / "dir"),
        (tmp_path / "mine.csv", planted),
        (shared / "dir" / "pipe", shared / "dir"),
    ):
        done = await run_cli(database_url, "export", "--account", "acme", "--output", str(output))
        assert (done.exit_code, done.stderr) == (
            1,
            f"error: cannot write {output}: {link} is a link another user made in a shared"
            " folder\n",
        )
    assert victim.read_text() == (home / "out.csv").read_text() == "important\n"
    (tmp_path / "loop").symlink_to(tmp_path / "loop")  # once a RuntimeError's traceback
    done = await run_cli(
        database_url, "export", "--account", "acme", "--output", str(tmp_path / "loop")
    )
    assert done.exit_code == 1 and done.stderr.startswith(f"error: cannot write {tmp_path}/loop: ")
    assert done.stderr.count("\n") == 1
    ours = shared / "ours.csv"
    ours.symlink_to(victim)
    done = await run_cli(database_url, "export", "--account", "acme", "--output", str(ours))
    assert done.exit_code == 0, done.stderr
    assert victim.read_text().startswith("id,accountId,")


async def test_an_export_writes_through_nothing_left_at_a_guessable_name(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """The export was written to `PATH.partial`, opened as found: a link planted there sent the
    contacts into the file it pointed at, and a file someone else left there (mode 0666) was
    filled and renamed into place, theirs. A new file still gets the umask's permissions."""
    await new_account(db)
    shared = tmp_path / "shared"
    shared.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("important\n")
    out = shared / "out.csv"
    (shared / "out.csv.partial").symlink_to(victim)
    done = await run_cli(database_url, "export", "--account", "acme", "--output", str(out))
    assert done.exit_code == 0, done.stderr
    assert victim.read_text() == "important\n"
    assert not out.is_symlink()
    assert out.read_text().startswith("id,accountId,")
    umask = os.umask(0o22)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    planted = shared / "team.csv.partial"
    planted.write_text("")
    planted.chmod(0o666)
    done = await run_cli(
        database_url, "export", "--account", "acme", "--output", str(shared / "team.csv")
    )
    assert done.exit_code == 0, done.stderr
    assert planted.read_text() == ""
    assert (shared / "team.csv").read_text().startswith("id,accountId,")


def test_the_error_report_writes_through_no_link_made_after_the_start(tmp_path: Path) -> None:
    """The stale report is removed when the import starts; a link made at its name before the
    first rejected row was followed, and the rejected rows written into its target."""
    victim = tmp_path / "victim.txt"
    victim.write_text("important\n")
    path = tmp_path / "leads.csv.errors.csv"
    report = ErrorReport(path)
    path.symlink_to(victim)
    with pytest.raises(FileExistsError):
        report.add_record((2, "email", "Invalid email", "bad@,Secret Person"))
    report.close()
    assert victim.read_text() == "important\n"


async def test_a_file_that_links_to_its_own_report_name_is_not_removed(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """`leads` a link to `leads.errors.csv`: removing the stale report removed the data."""
    await new_account(db)
    data = tmp_path / "leads.errors.csv"
    data.write_text("Email\na@example.com\nbad\n")
    (tmp_path / "leads").symlink_to(data)
    done = await import_into_acme(database_url, tmp_path / "leads")
    assert done.exit_code == 1
    assert done.stderr == (
        f"error: cannot write {data}: it is the file being imported; rename one\n"
    )
    assert data.read_text() == "Email\na@example.com\nbad\n"


@pytest.mark.parametrize("rejected", [0, 1])
async def test_a_folder_that_cannot_take_the_report_sends_it_to_the_temporary_folder(
    database_url: str,
    db: Database,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rejected: int,
) -> None:
    """In a folder the report cannot be made in (read-only, another user's), the import
    committed its first batch, stopped at the first rejected row, and every re-run stopped
    there again. The report now goes to the temporary folder; an import with no rejected
    row, as before, leaves none. The file system is faked (the tests run as root, whom
    permissions do not stop)."""
    account = await new_account(db)
    path = tmp_path / "leads.csv"
    rows = "".join(f"lead{i}@example.com\n" for i in range(50))
    path.write_text("Email\n" + "bad\n" * rejected + rows)
    spare = tmp_path / "temporary"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    real_open = os.open

    def read_only_folder(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(name).parent == tmp_path and flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system", str(name))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_folder)
    done = await import_into_acme(database_url, path)
    monkeypatch.undo()
    assert done.exit_code == 0, done.stderr
    assert done.stdout == f"created 50, updated 0, failed {rejected}, unchanged 0\n"
    assert await count_contacts(db, account.account_id) == 50
    moved = sorted(spare.iterdir())
    assert not (tmp_path / "leads.csv.errors.csv").exists()
    if not rejected:
        assert (moved, done.stderr) == ([], "")
        return
    [report] = moved
    assert report.name.startswith("leads.csv.errors.") and report.suffix == ".csv"
    assert report.read_text().splitlines()[1].startswith("2,email,")
    assert done.stderr == f"1 row(s) rejected, see {report} ({tmp_path} cannot take the report)\n"


async def test_a_stale_report_that_cannot_be_removed_is_said_so(
    database_url: str, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder is fine but an earlier report there is not ours to remove (another user's in
    /tmp, immutable): the new one goes to the temporary folder, and the line says the stale
    one is an earlier report, not that the folder refused (and says it when FILE is in the
    temporary folder itself, where no folder moved)."""
    await new_account(db)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "leads.csv"
    path.write_text("Email\nbad\nok@example.com\n")
    stale = tmp_path / "leads.csv.errors.csv"
    stale.write_text("row,field,message,original\n9,email,from last week,\n")
    real_unlink = os.unlink

    def immutable(name: Any, *args: Any, **kwargs: Any) -> None:
        if Path(name).absolute() == stale:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(name))
        real_unlink(name, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", immutable)
    done = await run_cli(database_url, "import", "leads.csv", "--account", "acme")
    monkeypatch.undo()
    assert done.stdout == "created 1, updated 0, failed 1, unchanged 0\n", done.stderr
    [report] = [
        p for p in tmp_path.iterdir() if p.name.startswith("leads.csv.errors.") and p != stale
    ]
    assert done.stderr == (
        f"1 row(s) rejected, see {report} ({stale} is in the way and cannot be removed)\n"
    )
    assert "from last week" in stale.read_text()
    clean = tmp_path / "clean.csv"  # nothing rejected: still said, or it passes for this run's
    clean.write_text("Email\nok2@example.com\n")
    (tmp_path / "clean.csv.errors.csv").write_text("row,field,message,original\n")
    stale = tmp_path / "clean.csv.errors.csv"
    monkeypatch.setattr(os, "unlink", immutable)
    done = await run_cli(database_url, "import", str(clean), "--account", "acme")
    monkeypatch.undo()
    assert done.stdout == "created 1, updated 0, failed 0, unchanged 0\n", done.stderr
    assert done.stderr == f"note: {stale} is not this run's: it cannot be removed\n"


async def test_the_error_report_is_no_more_readable_than_the_file(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """The report quotes the rejected rows; it was created 0644 beside a 0600 file."""
    await new_account(db)
    for name, mode in (("private.csv", 0o600), ("shared.csv", 0o644)):
        path = tmp_path / name
        path.write_text("email,firstName\nnot-an-email,Secret Person\n")
        path.chmod(mode)
        result = await import_into_acme(database_url, path)
        assert result.stdout == "created 0, updated 0, failed 1, unchanged 0\n"
        report = tmp_path / f"{name}.errors.csv"
        assert "Secret Person" in report.read_text()
        umask = os.umask(0o22)
        os.umask(umask)
        assert stat.S_IMODE(report.stat().st_mode) == mode & ~umask, name


async def test_a_csv_opening_with_blank_lines_and_a_huge_cell_imports_the_rest(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """Blank lines before the header once made every row fail; a cell over csv's 128 KiB
    default once stopped the whole import. The huge cell is now its own row's failure."""
    await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_text("\n\nemail,firstName\na@x.test,Ann\nb@x.test," + "x" * 200_000 + "\n")
    result = await import_into_acme(database_url, path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "created 1, updated 0, failed 1, unchanged 0\n"
    report = (tmp_path / "leads.csv.errors.csv").read_text().splitlines()
    assert report[1].startswith("5,firstName,String must contain at most 25 character(s),")


@pytest.mark.parametrize(
    "content",
    [
        " \nFirst Name,Email\nAnn,ann@x.test\n",  # a line of a space: every row failed
        ",,\r\nFirst Name,Email,Phone\r\nAnn,ann@x.test,\r\n",  # a sheet's empty first row
        "sep=;\r\nFirst Name;Email\r\nAnn;ann@x.test\r\n",  # Excel's delimiter line
        "sep=,\nFirst Name,Email\nAnn,ann@x.test\n",
        " ; ;\nsep=\t\nFirst Name\tEmail\nAnn\tann@x.test\n",
        '"",""\nsep=;\nEmail\nann@x.test\n',  # quoted empty cells; a one-column header
        '" ",""\nEmail\nann@x.test\n',  # a quoted space
    ],
)
async def test_what_spreadsheets_put_before_the_header_is_skipped(
    database_url: str, db: Database, tmp_path: Path, content: str
) -> None:
    """Empty rows (`,,`) and Excel's `sep=;` line made the file "unrecognised", a line of
    spaces made every row fail; the header after them is found, the rows imported."""
    await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_bytes(content.encode())
    result = await import_into_acme(database_url, path)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == "created 1, updated 0, failed 0, unchanged 0\n"
    [contact] = await exported_contacts(database_url)
    assert (contact["firstName"], contact["email"]) == (
        "Ann" if "Ann" in content else None,
        "ann@x.test",
    )


async def test_a_lone_quote_before_the_header_is_no_blank_line(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """Skipped as blank when looking for the header, it was a quote left open to the reader,
    which read the whole file into one cell: `created 0, failed 0`, exit 0."""
    await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_text('"\nemail,first name\na@x.test,A\n')
    result = await import_into_acme(database_url, path)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unrecognised format: expected JSON Lines, or CSV")


async def test_utm_columns_are_read_however_spreadsheets_spell_them(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """`UTM Source` and `utm-medium` were ignored, the attribution lost without a word."""
    await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_text(
        "Email,UTM Source,utm-medium,UTM_Campaign, utm_term ,UTMContent\n"
        "ann@x.test,google,cpc,spring,shoes,banner\n"
    )
    result = await import_into_acme(database_url, path)
    assert result.stdout == "created 1, updated 0, failed 0, unchanged 0\n", result.stderr
    [contact] = await exported_contacts(database_url)
    tracking = contact["tracking"]
    expected = {"source": "google", "medium": "cpc", "campaign": "spring", "term": "shoes"}
    expected["content"] = "banner"
    assert {k: tracking[f"utm_{k}"] for k in expected} == expected


async def test_two_columns_for_one_field_fail_only_rows_where_they_differ(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """The last column's value not empty was taken, the other's lost without a word: with
    `Email,First Name,Email` the first address was never imported. One column filled, or
    both alike, is that value; different values fail the row, naming the columns."""
    await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_text(
        "Email,Phone,Mobile,Email Address\n"
        "a@x.test,+15550000001,,\n"  # one of each: as ever
        "b@x.test,,+15550000002,b@x.test\n"  # Mobile alone; both emails alike
        ",+15550000003,+15550000003,c@x.test\n"  # the second email alone; phones alike
        "d@x.test,+15550000004,+15550000005,\n"  # two phones: which one is not ours to say
        "e@x.test,,,f@x.test\n"  # two emails
    )
    result = await import_into_acme(database_url, path)
    assert result.stdout == "created 3, updated 0, failed 2, unchanged 0\n", result.stderr
    contacts = sorted((c["email"], c["phoneNumber"]) for c in await exported_contacts(database_url))
    assert contacts == [
        ("a@x.test", "+15550000001"),
        ("b@x.test", "+15550000002"),
        ("c@x.test", "+15550000003"),
    ]
    report = (tmp_path / "leads.csv.errors.csv").read_text().splitlines()[1:]
    assert report == [
        "5,(row),The columns 'Phone' and 'Mobile' give phoneNumber different values: keep one,"
        '"d@x.test,+15550000004,+15550000005,"',
        "6,(row),The columns 'Email' and 'Email Address' give email different values: keep one,"
        '"e@x.test,,,f@x.test"',
    ]


async def test_country_code_is_taken_over_a_country_column_beside_it(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """Shopify's customers export has both `Country` (a name, too long for the field) and
    `Country Code`: the code is the field's, the name ignored (a row with the code empty
    imports without a country, as it did, rather than failing on the name)."""
    await new_account(db)
    path = tmp_path / "customers.csv"
    path.write_text("Email,Country,Country Code\na@x.test,Canada,CA\nb@x.test,United States,\n")
    result = await import_into_acme(database_url, path)
    assert result.stdout == "created 2, updated 0, failed 0, unchanged 0\n", result.stderr
    countries = sorted((c["email"], c["country"]) for c in await exported_contacts(database_url))
    assert countries == [("a@x.test", "CA"), ("b@x.test", None)]


async def test_two_email_columns_differing_in_case_only_agree(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """Compared as the import matches them: one contact, not a clash (and an integer field's
    digits by value)."""
    await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_text("Email,Email Address\nWS@x.test,ws@x.test\n")
    result = await import_into_acme(database_url, path)
    assert result.stdout == "created 1, updated 0, failed 0, unchanged 0\n", result.stderr
    layout = CsvLayout(["email", "eventId", "eventId"], ["Email", "Event ID", "eventId"])
    assert layout.clash(["a@x.test", "7", "07"]) is None
    assert layout.clash(["a@x.test", "7", "8"]) == (
        "The columns 'Event ID' and 'eventId' give eventId different values: keep one"
    )


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (
            "email,firstName\na@x.test,Ann\n".encode("utf-16"),
            'UTF-16 text (Excel\'s "Unicode Text"); save it as CSV UTF-8',
        ),
        (gzip.compress(b"email\na@x.test\n"), "a gzip file; decompress it first"),
        (
            b"PK\x03\x04\x14\x00\x06\x00[Content_Types].xml",
            "a zip file (an .xlsx workbook?); save the sheet as CSV UTF-8",
        ),
    ],
)
async def test_a_file_that_is_not_csv_is_named_with_what_to_do(
    database_url: str, db: Database, tmp_path: Path, content: bytes, said: str
) -> None:
    """Each was `not UTF-8 text (expected CSV or JSON Lines)`, naming nothing."""
    await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_bytes(content)
    result = await import_into_acme(database_url, path)
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: unrecognised format: {said}\n",
    )


async def test_a_cell_past_the_bound_stops_the_import_with_its_line(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    await new_account(db)
    path = tmp_path / "leads.csv"
    path.write_text('email,firstName\na@x.test,"' + "x" * (33 << 20) + "\n")  # a quote left open
    result = await import_into_acme(database_url, path)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot read ") and result.stderr.count("\n") == 1
    assert "line 2" in result.stderr and "a quote left open" in result.stderr


async def test_a_directory_where_the_report_goes_sends_it_elsewhere(
    database_url: str, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory at FILE.errors.csv: once a traceback, then exit 1; the file is processed
    all the same (exit 0, as OPERATIONS.md says), the report in the temporary folder."""
    await new_account(db)
    spare = tmp_path / "temporary"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    path = tmp_path / "leads.csv"
    path.write_text("email\nbad@\n")
    in_the_way = tmp_path / "leads.csv.errors.csv"
    in_the_way.mkdir()
    result = await import_into_acme(database_url, path)
    assert (result.exit_code, result.stdout) == (0, "created 0, updated 0, failed 1, unchanged 0\n")
    [report] = spare.iterdir()
    assert result.stderr == (
        f"1 row(s) rejected, see {report} ({in_the_way} is in the way and cannot be removed)\n"
    )


@pytest.mark.parametrize("name", ["a" * 246 + ".csv", "名" * 81 + ".csv"])  # 250, 247 bytes
async def test_a_file_whose_report_name_would_be_too_long(
    database_url: str, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A name of 246 to 255 bytes is fine for FILE, too long with `.errors.csv` added: the
    import stopped, exit 1, though its file was read and its rows valid or not."""
    await new_account(db)
    spare = tmp_path / "temporary"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))
    path = tmp_path / name
    path.write_text("email\nbad@\nok@example.com\n")
    result = await import_into_acme(database_url, path)
    assert (result.exit_code, result.stdout) == (0, "created 1, updated 0, failed 1, unchanged 0\n")
    [report] = spare.iterdir()
    assert result.stderr == (
        f"1 row(s) rejected, see {report} (FILE's name is too long for a report beside it)\n"
    )
    path.write_text("email\nok2@example.com\n")  # nothing rejected: nothing to say
    result = await import_into_acme(database_url, path)
    assert (result.exit_code, result.stderr) == (0, "")


async def test_repeated_rows_count_as_what_each_did(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """A row repeating the one before changes nothing: unchanged, not updated."""
    await new_account(db)
    path = tmp_path / "same.csv"
    path.write_text("email,firstName\na@x.test,Ann\na@x.test,Ann\nA@X.TEST,\n")
    first = await import_into_acme(database_url, path)
    assert first.stdout == "created 1, updated 1, failed 0, unchanged 1\n"  # the 3rd: email case
    again = await import_into_acme(database_url, path)
    assert again.stdout == "created 0, updated 0, failed 0, unchanged 3\n"


async def test_export_to_a_device_or_a_link_writes_through_it(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """The rename over PATH is for files: a device (/dev/null, /dev/stdout) is written to as
    it is, never replaced by a file; a link keeps pointing at its file, which gets the export."""
    await new_account(db)
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    except PermissionError:
        pytest.skip("creating a device node needs root")
    done = await run_cli(database_url, "export", "--account", "acme", "--output", str(device))
    assert done.exit_code == 0, done.stderr
    assert stat.S_ISCHR(device.stat().st_mode)
    target, link = tmp_path / "real.csv", tmp_path / "link.csv"
    target.write_text("old\n")
    link.symlink_to(target)
    done = await run_cli(database_url, "export", "--account", "acme", "--output", str(link))
    assert done.exit_code == 0, done.stderr
    assert link.is_symlink() and target.read_text().startswith("id,accountId,")
    assert sorted(p.name for p in tmp_path.iterdir() if "partial" in p.name) == []


async def test_json_lines_whose_first_record_outgrows_the_sample_are_json_lines(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """The pretty-printed-document check reads the first line; cut short by the format sample
    (here right after a `[`), that line is no line at all, and the file is JSON Lines."""
    await new_account(db)
    head = '{"email": "a@x.test", "note": "'
    filler = "x" * (SAMPLE_BYTES - len(head) - 1) + "["
    path = tmp_path / "leads.jsonl"
    path.write_text(head + filler + '"}\n{"email": "b@x.test"}\n')
    result = await import_into_acme(database_url, path)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "created 2, updated 0, failed 0, unchanged 0\n"


async def test_bad_usage_exits_2(database_url: str, tmp_path: Path) -> None:
    no_account = await run_cli(database_url, "import", str(tmp_path / "x.csv"))
    assert no_account.exit_code == 2
    bad_format = await run_cli(database_url, "export", "--account", "a", "--format", "xml")
    assert bad_format.exit_code == 2


EXPORT = [sys.executable, "-m", "contacts_api", "export", "--account", "acme"]


async def test_an_export_whose_reader_stops_says_so(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """`export | head` said "cannot reach the database: Broken pipe"; a closed stdout (`>&-`)
    gave a traceback."""
    await new_account(db)
    path = tmp_path / "many.csv"
    path.write_text("email\n" + "".join(f"lead{n}@example.com\n" for n in range(3000)))
    assert (await import_into_acme(database_url, path)).exit_code == 0
    env = {**os.environ, "CONTACTS_API_DATABASE_URL": database_url}
    for output, name in (([], "standard output"), (["--output", "/dev/stdout"], "/dev/stdout")):
        with subprocess.Popen(
            [*EXPORT, *output], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as export:
            assert export.stdout is not None and export.stderr is not None
            assert export.stdout.read(100).startswith(b"id,accountId,")
            export.stdout.close()  # as `head -c 100` does, long before 3,000 contacts are out
            said = export.stderr.read().decode()
            assert export.wait(timeout=60) == 1
        assert said == f"error: {name} was closed before the export finished\n"

    with open("/dev/full", "w") as full:  # a disk with no room left behind `> file`
        no_room = subprocess.run(
            EXPORT, env=env, stdout=full, stderr=subprocess.PIPE, text=True, check=False
        )
    assert no_room.returncode == 1
    assert no_room.stderr == "error: cannot write to standard output: No space left on device\n"

    closed = subprocess.run(
        ["sh", "-c", 'exec 1>&-; exec "$@"', "sh", *EXPORT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert closed.returncode == 1
    assert closed.stderr == "error: cannot write to standard output: it is closed\n"
