"""Text from a learner's app or build reaches the terminal inert: no escape sequence, no
control character, no Rich markup. (A whole grade of an app that writes them: test_limits.)"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from bb.cli.console import printable
from bb.errors import ContentError, ExitCode
from bb.results.report import CheckResult, GradeReport, Status, render

#: Clear screen, cursor home, window title, bell, an 8-bit CSI, terminal reset, Rich markup.
ESCAPES = "\x1b[2J\x1b[H\x1b]0;pwned\x07\x07\x9b31m\x1bc[red]not markup[/red]"


def controls(text: str) -> list[str]:
    """The control characters in ``text`` other than newline and tab."""
    return sorted({c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F})


def test_printable_drops_whole_escape_sequences_and_keeps_text() -> None:
    assert printable(ESCAPES + " tail") == "[red]not markup[/red] tail"
    assert printable("a\tb\nc") == "a\tb\nc"
    assert printable("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\") == "link"
    assert printable("crlf\r\nnul\x00 del\x7f c1\x85 rtl\u202eok") == "crlf\nnul del c1 rtlok"
    assert printable("é ü 日本 ✓") == "é ü 日本 ✓"
    # An unterminated OSC ends at the line's end; it cannot swallow the rest of a log.
    assert printable("\x1b]0;title\nnext line") == "\nnext line"


def _terminal_output(renderable: Any) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=100, force_terminal=True, color_system="standard").print(renderable)
    return buffer.getvalue()


def test_a_report_prints_app_text_inert() -> None:
    report = GradeReport(
        exercise="ex",
        title="Ex",
        duration=1.0,
        timings={},
        checks=(
            CheckResult(
                name="c",
                description="check " + ESCAPES,
                status=Status.FAILED,
                message="GET / answered " + ESCAPES,
                expected="plain",
                actual=ESCAPES,
                hint="hint " + ESCAPES,
                log="log line " + ESCAPES + "\nanother [bold]line[/]",
            ),
        ),
    )
    output = _terminal_output(render(report))
    # Rich's own colours are the only escape sequences left: SGR, ESC [ ... m.
    foreign = re.sub(r"\x1b\[[0-9;]*m", "", output)
    assert controls(foreign) == [], repr(foreign)
    assert "pwned" not in output
    assert foreign.count("[red]not markup[/red]") == 5
    assert "another [bold]line[/]" in foreign


def test_error_messages_print_inert(capsys: pytest.CaptureFixture[str]) -> None:
    from bb.cli.app import guarded

    @guarded
    def command() -> None:
        raise ContentError("The suite broke:\n" + ESCAPES, hint="see " + ESCAPES)

    with pytest.raises(Exception) as raised:
        command()
    assert getattr(raised.value, "exit_code", None) == ExitCode.CONTENT
    stderr = capsys.readouterr().err
    assert controls(stderr) == [], repr(stderr)
    assert "error: The suite broke:\n[red]not markup[/red]" in stderr
    assert "hint: see [red]not markup[/red]" in stderr
