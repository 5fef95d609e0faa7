"""The bounded end of a stream of text: what bb keeps of a build's output or a container's log.

Output of a learner's build or app has no size limit (one line can be hundreds of megabytes),
so it is read chunk by chunk and only its last lines are kept, each cut to a fixed length:
memory stays bounded whatever arrives.
"""

from __future__ import annotations

import codecs
from collections import deque


class TextTail:
    """The last ``max_lines`` lines fed in, each at most ``max_line_chars`` characters long,
    and at most ``max_chars`` characters in all (the oldest lines go first)."""

    def __init__(
        self,
        *,
        max_lines: int,
        max_line_chars: int = 1000,
        max_chars: int = 64 * 1024,
        skip_blank: bool = False,
    ) -> None:
        self.max_lines = max(max_lines, 0)
        self.max_line_chars = max_line_chars
        self.max_chars = max_chars
        self.skip_blank = skip_blank
        self._lines: deque[str] = deque()
        self._chars = 0
        self._partial: list[str] = []  # the kept start of the line still arriving
        self._partial_chars = 0
        self._cut = 0  # characters of that line beyond max_line_chars, counted, not kept
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed_bytes(self, data: bytes) -> list[str]:
        """Add raw output (UTF-8, possibly split mid-character); return the lines it ended."""
        return self.feed(self._decoder.decode(data))

    def feed(self, text: str) -> list[str]:
        """Add text; return the lines it completed (as kept: cut to length)."""
        pieces = text.split("\n")
        ended = []
        for piece in pieces[:-1]:
            self._extend(piece)
            line = self._end_line()
            if line is not None:
                ended.append(line)
        self._extend(pieces[-1])
        return ended

    def add_line(self, line: str) -> None:
        """Add one whole line of bb's own (ending whatever line was still arriving)."""
        self.flush()
        self.feed(line + "\n")

    def flush(self) -> str | None:
        """End the line still arriving, if any; return it as kept."""
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self._extend(tail)
        if self._partial or self._cut:
            return self._end_line()
        return None

    def text(self) -> str:
        """The kept lines, newline-separated (with the line still arriving, if any)."""
        lines = list(self._lines)
        if self._partial or self._cut:
            lines.append(self._current())
        return "\n".join(lines[len(lines) - self.max_lines :])

    def _extend(self, piece: str) -> None:
        room = self.max_line_chars - self._partial_chars
        if room > 0 and piece:
            kept = piece[:room]
            self._partial.append(kept)
            self._partial_chars += len(kept)
        self._cut += max(len(piece) - max(room, 0), 0)

    def _current(self) -> str:
        line = "".join(self._partial).removesuffix("\r")
        if self._cut:
            line += f" … ({self._cut} more characters)"
        return line

    def _end_line(self) -> str | None:
        line = self._current()
        self._partial.clear()
        self._partial_chars = 0
        self._cut = 0
        if self.skip_blank and not line.strip():
            return None
        line = line.rstrip() if self.skip_blank else line
        self._lines.append(line)
        self._chars += len(line) + 1
        while self._lines and (len(self._lines) > self.max_lines or self._chars > self.max_chars):
            self._chars -= len(self._lines.popleft()) + 1
        return line
