"""The `mdpipe` command: output contracts and exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mdpipe.cli import EXIT_DATABASE, EXIT_REFUSED, main

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_prints_exactly_one_object_with_the_promised_keys(capsys, database_url, write_csv):
    path = write_csv("Email,Phone\na@example.com,+15551234567\nbad,\n")
    status, out, _ = run(
        capsys, "import", "contacts", str(path), "--json", "--database-url", database_url
    )
    assert status == 0
    data = json.loads(out)
    assert list(data) == [
        "run_id", "status", "processed", "imported", "updated", "skipped", "failed",
        "normalised_phones", "ignored_columns", "reasons",
    ]  # fmt: skip
    assert (data["processed"], data["imported"], data["failed"]) == (2, 1, 1)
    assert data["reasons"] == {"invalid-email": 1}


def test_a_run_with_failed_rows_still_exits_zero_and_prints_a_table(
    capsys, database_url, write_csv
):
    path = write_csv("Email\nbad\n")
    status, out, _ = run(capsys, "import", "contacts", str(path), "--database-url", database_url)
    assert status == 0
    assert "failed" in out and "invalid-email" in out


def test_the_summary_names_the_first_failed_rows_and_where_the_rest_are(
    capsys, database_url, write_csv
):
    bad = "".join(f"bad{i},\n" for i in range(12))  # rows 2-13
    path = write_csv(f"Email,Phone\n{bad}ok@example.com,+15551234567\n,+1\n")
    status, out, _ = run(capsys, "import", "contacts", str(path), "--database-url", database_url)
    assert status == 0
    lines = out.splitlines()
    shown = lines[lines.index("row\tcolumn\treason\tvalue\tdetail") + 1 :]
    assert [line.split("\t")[:4] for line in shown[:2]] == [
        ["2", "Email", "invalid-email", "bad0"],
        ["3", "Email", "invalid-email", "bad1"],
    ]
    runs_listed = run(capsys, "runs", "list", "--database-url", database_url)[1]
    run_id = int(runs_listed.splitlines()[1].split("\t")[0])
    assert shown[10:] == [f"... and 3 more: mdpipe runs show {run_id}"]


def test_a_refused_file_is_one_line_on_stderr_without_traceback(capsys, database_url, write_csv):
    path = write_csv(b"email\n\xff\xfe\n")
    status, out, err = run(capsys, "import", "contacts", str(path), "--database-url", database_url)
    assert status == EXIT_REFUSED
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("mdpipe: error:") and "UTF-8" in err


def test_a_refused_file_does_not_touch_the_database(capsys, write_csv, tmp_path):
    """Not even to create the embedded default's file: the file's checks come first."""
    database = tmp_path / "never.db"
    for content in (b"email\n\xff\xfe\n", b"email\n", b'email\n"open\n'):
        path = write_csv(content)
        argv = ["import", "contacts", str(path), "--database-url", f"sqlite:///{database}"]
        assert run(capsys, *argv)[0] == EXIT_REFUSED
    assert not database.exists()


def test_a_reader_that_stops_reading_gets_no_traceback(tmp_path):
    """`mdpipe ... | head -1`: the import completes and nothing is printed on stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mdpipe.cli", "import", "contacts", "examples/contacts.csv"],
        cwd=ROOT,
        env={**os.environ, "MDPIPE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the command has printed anything
    err = process.stderr.read().decode()
    assert (process.wait(timeout=120), err) == (0, "")


def test_an_unknown_default_region_refuses_the_import(capsys, database_url, write_csv):
    path = write_csv("Phone\n4155550132\n")
    argv = ["import", "contacts", str(path), "--database-url", database_url]
    status, out, err = run(capsys, *argv, "--default-region", "ZZ")
    assert (status, out, err.count("\n")) == (EXIT_REFUSED, "", 1)
    assert "--default-region 'ZZ'" in err
    status, out, _ = run(capsys, *argv, "--default-region", "us", "--json")
    assert (status, json.loads(out)["imported"]) == (0, 1)


def test_an_unreachable_database_exits_non_zero_with_one_line(capsys, write_csv):
    path = write_csv("Email\na@example.com\n")
    url = "postgresql+psycopg://postgres:secret@127.0.0.1:1/none"
    status, _, err = run(capsys, "import", "contacts", str(path), "--database-url", url)
    assert status == EXIT_DATABASE
    assert "unreachable" in err and "secret" not in err and err.count("\n") == 1


def test_admin_commands(capsys, database_url, write_csv, tmp_path):
    db = ["--database-url", database_url, "--workspace", "acme"]
    assert run(capsys, "properties", "add", "tier", "--type", "number", *db)[0] == 0
    assert run(capsys, "properties", "list", *db)[1] == "tier\tnumber\n"
    status, _, err = run(capsys, "properties", "add", "Email", "--type", "text", *db)
    assert status == EXIT_REFUSED and "taken" in err
    assert run(capsys, "channels", "add", "Main line", "--phone", "+1 555 010 0000", *db)[0] == 0
    assert run(capsys, "channels", "list", *db)[1] == "Main line\t+15550100000\n"
    path = write_csv("Email,Tier\na@example.com,2\n")
    assert run(capsys, "import", "contacts", str(path), *db)[0] == 0
    out_file = tmp_path / "export.csv"
    assert run(capsys, "contacts", "export", "-o", str(out_file), *db)[0] == 0
    assert out_file.read_text().splitlines() == [
        "first_name,last_name,email,phone,company,tier",
        ",,a@example.com,,,2",
    ]
    status, out, _ = run(capsys, "runs", "list", *db)
    assert status == 0 and "contacts" in out.splitlines()[1]
    status, out, _ = run(capsys, "runs", "show", "1", "--json", *db)
    assert json.loads(out)["imported"] == 1
    assert run(capsys, "runs", "show", "99", *db)[0] == EXIT_REFUSED


def test_the_installed_command_runs_the_readme_example(tmp_path):
    env = {**os.environ, "MDPIPE_DATABASE_URL": ""}
    env.pop("MDPIPE_DATABASE_URL")
    mdpipe = Path(sys.executable).parent / "mdpipe"
    result = subprocess.run(
        [str(mdpipe), "import", "contacts", str(ROOT / "examples" / "contacts.csv"), "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imported"] == 4
    assert (tmp_path / "mdpipe.db").exists()


def test_import_messages_command(capsys, database_url, write_csv):
    db = ["--database-url", database_url]
    assert run(capsys, "channels", "add", "Main", "--phone", "+15550100000", *db)[0] == 0
    path = write_csv("When,Direction,Phone,Body,Line\n2025-06-01 10:00,out,+14155550132,hi,Main\n")
    status, out, _ = run(
        capsys, "import", "messages", str(path), "--json", "--timezone", "America/New_York", *db
    )
    assert status == 0
    assert json.loads(out)["imported"] == 1
    status, _, err = run(capsys, "import", "messages", str(path), "--timezone", "Nowhere/Zone", *db)
    assert status == EXIT_REFUSED and "time zone" in err
    lineless = write_csv("When,Direction,Phone,Body\n2025-06-02 10:00,out,+14155550132,hi\n")
    status, out, _ = run(
        capsys, "import", "messages", str(lineless), "--json", "--channel", "main", *db
    )
    assert status == 0 and json.loads(out)["imported"] == 1
    status, _, err = run(capsys, "import", "messages", str(lineless), "--channel", "Nope", *db)
    assert status == EXIT_REFUSED and "--channel 'Nope'" in err


def test_runs_show_reports_the_progress_of_a_running_import(capsys, database_url):
    from mdpipe.db.engine import open_engine, transaction
    from mdpipe.db.runs import record_progress, start_run
    from mdpipe.workspace import ensure_workspace

    engine = open_engine(database_url)
    with transaction(engine) as conn:
        workspace_id = ensure_workspace(conn, "default")
        run_id = start_run(
            conn, workspace_id=workspace_id, kind="contacts", file_name="big.csv",
            file_sha256="0" * 64, options={}, rows_total=250_000,
        )  # fmt: skip
        record_progress(conn, run_id, 100_000)
    status, out, _ = run(capsys, "runs", "show", str(run_id), "--database-url", database_url)
    assert status == 0
    assert "running" in out and "100,000/250,000 rows loaded" in out


def test_messages_errors_csv_keeps_the_text_as_it_was(capsys, database_url, write_csv, tmp_path):
    db = ["--database-url", database_url]
    run(capsys, "channels", "add", "Main", "--phone", "+15550100000", *db)
    path = write_csv(
        'Timestamp,Direction,Phone,Text,Channel\nsoon,out,+14155550132," two\nlines ""quoted"" ",Main\n'
    )
    errors_out = tmp_path / "errors.csv"
    status, _, _ = run(
        capsys, "import", "messages", str(path), "--errors-out", str(errors_out), *db
    )
    assert status == 0
    import csv

    with errors_out.open(newline="", encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["Text"] == ' two\nlines "quoted" '
    assert (row["row"], row["reason"]) == ("2", "invalid-timestamp")


def test_a_past_runs_error_csv_is_written_from_the_file_it_imported(
    capsys, database_url, write_csv, tmp_path
):
    """Forgot --errors-out? The run's errors and its file give the same CSV, without a re-run
    (which would count this run's imports as duplicates)."""
    path = write_csv('Name,Email,Phone\nAda,ada@example.com,\n"=1+1",bad,\nBo,ada@example.com,+1\n')
    during = tmp_path / "during.csv"
    db = ["--database-url", database_url]
    run(capsys, "import", "contacts", str(path), "--errors-out", str(during), *db)
    later = tmp_path / "later.csv"
    status, out, _ = run(capsys, "runs", "errors", "1", str(path), "-o", str(later), *db)
    assert (status, out) == (0, f"2 failed and skipped rows of run 1 written to {later}\n")
    assert later.read_bytes() == during.read_bytes()

    status, _, err = run(capsys, "runs", "errors", "99", str(path), "-o", str(later), *db)
    assert (status, err) == (EXIT_REFUSED, "mdpipe: error: no import run 99\n")

    other = write_csv("Email\nsomeone@example.com\n", name="other.csv")
    status, _, err = run(capsys, "runs", "errors", "1", str(other), "-o", str(later), *db)
    assert status == EXIT_REFUSED and "not the file run 1 imported" in err


def test_a_dry_run_prints_the_first_rows_as_they_would_be_stored(capsys, database_url):
    example = str(ROOT / "examples" / "contacts.csv")
    status, out, _ = run(
        capsys, "import", "contacts", example, "--dry-run", "--database-url", database_url
    )
    assert status == 0
    lines = out.splitlines()
    start = lines.index("the first rows as they would be stored:")
    assert lines[start + 1].split("\t") == [
        "row", "outcome", "first_name", "last_name", "email", "phone", "company", "properties",
    ]  # fmt: skip
    assert lines[start + 2].split("\t") == [
        "2", "imported", "Ada", "Lovelace", "ada@example.com", "+442079460958",
        "Analytical Engines", "{}",
    ]  # fmt: skip
    # a real run shows no preview: the rows are stored
    _, out, _ = run(capsys, "import", "contacts", example, "--database-url", database_url)
    assert "as they would be stored" not in out
