"""Entity tags (RFC 9110 §8.8.3) and the two conditional headers this API honours.

An entity tag is a quoted string, ``"abc"`` (strong) or ``W/"abc"`` (weak). If-None-Match
compares weakly (``W/"abc"`` matches ``"abc"``), because a cache only asks "is my copy still
good?". If-Match compares strongly (a weak tag never matches), because a write must be based
on exactly the bytes the client saw.
"""

import hashlib
import re

#: One entity tag in a list: optional W/, then a quoted string without quotes inside.
ENTITY_TAG = re.compile(r'\s*(W/)?"([^"]*)"\s*(?:,|$)')


def article_etag(article_id: int, version: int) -> str:
    """Strong: the version changes with every update, so two different bodies never share it."""
    return f'"{article_id}.{version}"'


def body_etag(body: bytes) -> str:
    """Strong, from the exact bytes sent: any change to any item changes it."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def parse(header: str) -> list[tuple[bool, str]] | None:
    """The (weak, opaque) tags of an If-Match or If-None-Match list; None for ``*``.

    Anything that isn't a well-formed tag is skipped: it can match nothing.
    """
    if header.strip() == "*":
        return None
    return [(bool(m.group(1)), m.group(2)) for m in ENTITY_TAG.finditer(header)]


def none_match(header: str | None, etag: str) -> bool:
    """Whether If-None-Match holds ``etag`` (weak comparison): then the answer is 304."""
    if header is None:
        return False
    tags = parse(header)
    current = etag.removeprefix("W/").strip('"')
    return tags is None or any(opaque == current for _, opaque in tags)


def strong_opaques(header: str) -> list[str] | None:
    """The strong tags an If-Match lists (weak ones can never match); None for ``*``."""
    tags = parse(header)
    return None if tags is None else [opaque for _, opaque in tags]
