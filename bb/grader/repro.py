"""Commands that reproduce a failed check by hand, against the project's `bb up` stack.

The grader's HTTP clients and its ``db`` connection note the last request or statement of
the running check. When the check fails, that one becomes a curl or psql line aimed at where
`bb up` serves the project (stable ports), not at the grade's own stack, which is gone by the
time the learner reads it.
"""

from __future__ import annotations

import shlex
import time
from typing import Any

#: Headers curl sets by itself, or that only describe this one transfer.
_IMPLIED_HEADERS = frozenset(
    {"host", "content-length", "accept-encoding", "user-agent", "connection", "accept"}
)
#: Bodies longer than this are not inlined (the line must stay pasteable).
_BODY_CHARS = 2000

_last: dict[str, Any] = {}


def reset() -> None:
    _last.clear()


def note_request(method: str, url: str, headers: list[tuple[str, str]], body: bytes) -> None:
    _last.update(kind="http", at=time.monotonic(), method=method, url=url, headers=headers,
                 body=body)  # fmt: skip


def note_query(text: str) -> None:
    _last.update(kind="sql", at=time.monotonic(), text=text)


def command(context: dict[str, Any]) -> str | None:
    """The command for the last thing the check did, or None when there is none to give."""
    if _last.get("kind") == "http" and context.get("debug_url"):
        return _curl(context)
    if _last.get("kind") == "sql" and context.get("debug_dsn"):
        return f"psql {shlex.quote(str(context['debug_dsn']))} -c {shlex.quote(_last['text'])}"
    return None


def _curl(context: dict[str, Any]) -> str | None:
    url = str(_last["url"])
    app_url = str(context.get("app_url", "")).rstrip("/")
    if not app_url or not url.startswith(app_url):
        return None  # not a request to the learner's app
    parts = ["curl", "-i"]
    if _last["method"] != "GET":
        parts += ["-X", _last["method"]]
    parts.append(shlex.quote(str(context["debug_url"]).rstrip("/") + url[len(app_url) :]))
    for name, value in _last["headers"]:
        if name.lower() not in _IMPLIED_HEADERS:
            parts += ["-H", shlex.quote(f"{name}: {value}")]
    body: bytes = _last["body"]
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None or len(text) > _BODY_CHARS or "\x00" in text:
            parts.append(f"# plus the {len(body)}-byte body the check sent")
        else:
            parts += ["--data-raw", shlex.quote(text)]
    return " ".join(parts)
