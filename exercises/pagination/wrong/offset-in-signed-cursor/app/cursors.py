"""Opaque, signed cursors.

A cursor holds how many rows the walk has already sent, and the filters of the walk.
Clients must treat it as an opaque string: they can't read it, and they can't forge it, because
it is signed with a key only the server knows.

    <base64url(JSON payload)>.<base64url(HMAC-SHA256(key, payload)), first 16 bytes>
"""

import base64
import binascii
import hashlib
import hmac

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from app.config import settings

# A key of its own, derived from the app's secret: a cursor signature can't be replayed as
# any other signature the app makes with that secret.
_KEY = hashlib.sha256(b"items-cursor:" + settings.jwt_secret.encode()).digest()
_SIGNATURE_BYTES = 16
#: Far longer than any cursor we issue; anything longer is refused before any work is done.
_MAX_LENGTH = 512


class InvalidCursor(ValueError):
    """The cursor was not issued by this API, or was changed since."""


class Cursor(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # How many rows the walk has sent so far: the next page starts there.
    offset: int
    # The walk's filters, so that every later page keeps them.
    status: str | None
    created_after: AwareDatetime | None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # Non-canonical spellings decode to the same bytes; accept only the one we issue.
    if _b64(raw) != text:
        raise InvalidCursor("not canonical base64url")
    return raw


def _sign(payload: bytes) -> bytes:
    return hmac.new(_KEY, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def encode_cursor(cursor: Cursor) -> str:
    payload = cursor.model_dump_json().encode()
    return f"{_b64(payload)}.{_b64(_sign(payload))}"


def decode_cursor(token: str) -> Cursor:
    """The cursor ``token`` stands for; InvalidCursor if it is garbage or was tampered with."""
    if len(token) > _MAX_LENGTH or token.count(".") != 1:
        raise InvalidCursor("not a cursor")
    payload_text, signature_text = token.split(".")
    try:
        payload, signature = _unb64(payload_text), _unb64(signature_text)
    except (binascii.Error, ValueError):
        raise InvalidCursor("not base64url") from None
    # compare_digest takes the same time wherever the first wrong byte is.
    if not hmac.compare_digest(signature, _sign(payload)):
        raise InvalidCursor("bad signature")
    try:
        return Cursor.model_validate_json(payload)
    except ValidationError:
        # Signed by us but unreadable: a cursor from an older format of this API.
        raise InvalidCursor("unreadable payload") from None
