"""Class grading: a folder of submissions graded into every format, nothing left running."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bb.errors import UserError
from bb.grading.classroom import Submission, SubmissionRejected, find_submissions, unpack
from tests.conftest import MINI_PACK, run_bb

TEMPLATE = MINI_PACK / "templates" / "hello"
SOLUTION = MINI_PACK / "exercises" / "hello" / "solution"


def _project(root: Path, *, solved: bool, server: str | None = None) -> Path:
    root.mkdir(parents=True)
    for source in TEMPLATE.iterdir():
        shutil.copy(source, root / source.name.removesuffix(".jinja"))
    # The submission carries the student's own Dockerfile, rendered as `bb start` did.
    dockerfile = (root / "Dockerfile").read_text()
    from bb.pack.manifest import load_pack

    tag = load_pack(MINI_PACK).image_tag("python")
    (root / "Dockerfile").write_text(dockerfile.replace("{{ images.python }}", tag))
    if solved:
        shutil.copy(SOLUTION / "answers.py", root / "answers.py")
    if server is not None:
        (root / "server.py").write_text(server)
    return root


def _zip(folder: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.rglob("*"):
            zf.write(path, Path(folder.name) / path.relative_to(folder))
    shutil.rmtree(folder)


def test_submissions_are_named_after_students(tmp_path: Path) -> None:
    (tmp_path / "alice").mkdir()
    (tmp_path / "bob.zip").write_bytes(b"")
    (tmp_path / "carol.tar.gz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a submission")
    assert [s.student for s in find_submissions(tmp_path)] == ["alice", "bob", "carol"]
    (tmp_path / "alice.zip").write_bytes(b"")
    with pytest.raises(UserError, match="Two submissions are named 'alice'"):
        find_submissions(tmp_path)


def test_archives_cannot_escape_their_folder(tmp_path: Path) -> None:
    evil = tmp_path / "mallory.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        payload = b"owned"
        info = tarfile.TarInfo("../../outside.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(SubmissionRejected, match="outside its folder"):
        unpack(Submission("mallory", evil), tmp_path / "work" / "mallory")
    assert not (tmp_path / "outside.txt").exists()
    slip = tmp_path / "eve.zip"
    with zipfile.ZipFile(slip, "w") as zf:
        zf.writestr("/etc/evil", "x")
    with pytest.raises(SubmissionRejected, match="outside its folder"):
        unpack(Submission("eve", slip), tmp_path / "work" / "eve")
    junk = tmp_path / "trent.zip"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SubmissionRejected, match="not a readable zip"):
        unpack(Submission("trent", junk), tmp_path / "work" / "trent")


@pytest.mark.docker
def test_a_class_is_graded_into_every_format(tmp_path: Path, no_leftovers: Any) -> None:
    submissions = tmp_path / "submissions"
    _project(submissions / "ada", solved=True)
    _zip(_project(tmp_path / "zipped" / "grace", solved=True), submissions / "grace.zip")
    _project(submissions / "linus", solved=False)
    _project(submissions / "crash", solved=True, server="raise SystemExit(3)\n")
    _project(submissions / "hang", solved=True, server="import time\ntime.sleep(3600)\n")
    (submissions / "junk.zip").write_bytes(b"this is not an archive")
    out = tmp_path / "results"

    result = run_bb(
        "class", "grade", submissions, "--exercise", "hello", "--pack", MINI_PACK,
        "--out", out, "--jobs", "3", "--timeout", "150", "--json",
    )  # fmt: skip
    events = [json.loads(line) for line in result.stdout.splitlines()]
    finished = {e["student"]: e for e in events if e["event"] == "finished"}
    assert set(finished) == {"ada", "grace", "linus", "crash", "hang", "junk"}
    assert {s for s, e in finished.items() if e["passed"]} == {"ada", "grace"}
    assert all(e["outcome"] == "graded" for e in finished.values())

    with (out / "grades.csv").open(encoding="utf-8") as fh:
        rows = {row["student"]: row for row in csv.DictReader(fh)}
    assert rows["ada"]["percent"] == "100.0"
    assert rows["linus"]["hello"] == "0" and rows["linus"]["health"] == "1"
    assert rows["junk"]["total"] == "0"
    for student in finished:
        folder = out / "students" / student
        for name in ("result.json", "junit.xml", "gradescope.json", "prairielearn.json"):
            assert (folder / name).is_file(), f"{student}: {name} missing"
    crashed = json.loads((out / "students" / "crash" / "result.json").read_text())
    assert {c["name"]: c["status"] for c in crashed["checks"]}["app"] == "failed"
    assert (out / "students" / "linus" / "app.log").is_file()
    page = (out / "report.html").read_text()
    assert "<script" not in page and "src=" not in page and "@import" not in page
    assert "linus" in page and "Add /hello to ROUTES" in page

    again = run_bb(
        "class", "grade", submissions, "--exercise", "hello", "--pack", MINI_PACK,
        "--out", out, "--json",
    )  # fmt: skip
    kinds = {
        json.loads(line)["student"]: json.loads(line)["event"]
        for line in again.stdout.splitlines()
        if "student" in json.loads(line)
    }
    assert kinds["ada"] == "reused" and kinds["linus"] == "reused"


def test_only_the_engines_build_failures_are_retried() -> None:
    from bb.grading.classroom import _engine_hiccup
    from bb.results.report import CheckResult, GradeReport, Status

    def with_build_log(log: str) -> GradeReport:
        build = CheckResult("build", "builds", Status.FAILED, log=log)
        return GradeReport("e", "E", (build,), 1.0, {})

    assert _engine_hiccup(with_build_log("failed to register layer: device busy"))
    assert not _engine_hiccup(with_build_log("ERROR: No matching distribution for flask"))
