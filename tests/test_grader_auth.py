"""bb.grader.auth: tokens the grader mints and forges, and the interleaved timing comparison."""

from __future__ import annotations

import hashlib
import hmac
import random
import time

import jwt
import pytest

from bb import grader
from bb.grader.auth import (
    app_secret,
    b64url_decode,
    bearer,
    compare_timing,
    forged_tokens,
    mint_token,
    token_parts,
)
from bb.grader.plugin import Stack

SECRET = "a-secret-of-thirty-two-characters"


def verify(token: str, secret: str = SECRET) -> dict[str, object]:
    return dict(jwt.decode(token, secret, algorithms=["HS256"]))


def test_minted_tokens_verify_with_the_secret_and_expire_after_their_ttl() -> None:
    token = mint_token(SECRET, {"sub": "42"}, ttl=600, now=time.time())
    claims = verify(token)
    assert claims["sub"] == "42"
    assert claims["exp"] == claims["iat"] + 600  # type: ignore[operator]
    assert token_parts(token)[0]["alg"] == "HS256"
    with pytest.raises(jwt.ExpiredSignatureError):
        verify(mint_token(SECRET, {"sub": "42"}, ttl=60, now=time.time() - 3600))


def test_each_forged_token_carries_the_claims_and_fails_verification() -> None:
    for seed in range(20):  # the flipped byte and bit move with the seed
        forged = forged_tokens(SECRET, {"sub": "7"}, rng=random.Random(seed))
        assert sorted(forged) == ["alg none", "expired", "one signature byte flipped",
                                  "signed with another secret"]
        for token in forged.values():
            assert token_parts(token)[1]["sub"] == "7"
        with pytest.raises(jwt.InvalidSignatureError):
            verify(forged["one signature byte flipped"])
        with pytest.raises(jwt.InvalidSignatureError):
            verify(forged["signed with another secret"])
        with pytest.raises(jwt.ExpiredSignatureError):
            verify(forged["expired"])
        with pytest.raises(jwt.InvalidAlgorithmError):
            verify(forged["alg none"])


def test_the_flipped_signature_differs_from_the_real_one_in_one_byte() -> None:
    for seed in range(20):
        token = forged_tokens(SECRET, {"sub": "7"}, rng=random.Random(seed))[
            "one signature byte flipped"]
        head, body, signature = token.split(".")
        real = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        changed = b64url_decode(signature)
        assert len(changed) == len(real)
        assert sum(x != y for x, y in zip(real, changed, strict=True)) == 1


def test_alg_none_has_an_unsigned_header_and_an_empty_signature() -> None:
    token = forged_tokens(SECRET, {"sub": "1"})["alg none"]
    header, claims = token_parts(token)
    assert header["alg"] == "none" and token.endswith(".") and claims["sub"] == "1"
    # Read without verification, as a careless app would, it looks like a real token.
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == "1"


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c", "e30.W10.x"])
def test_token_parts_refuses_what_is_not_a_jwt(garbage: str) -> None:
    with pytest.raises(ValueError):
        token_parts(garbage)


def test_app_secret_comes_from_the_apps_environment() -> None:
    stack = Stack({"app_url": "http://127.0.0.1:9", "seed": 1,
                   "app_environment": {"JWT_SECRET": SECRET, "PORT": "8000"}})
    assert app_secret(stack) == SECRET
    assert bearer("t") == {"Authorization": "Bearer t"}
    with pytest.raises(LookupError, match="NOPE"):
        app_secret(stack, "NOPE")


def test_timing_interleaves_the_two_kinds_and_compares_medians() -> None:
    calls: list[str] = []

    def sender(name: str, seconds: float) -> object:
        def send() -> None:
            calls.append(name)
            time.sleep(seconds)
        return send

    timing = compare_timing(sender("a", 0.002), sender("b", 0.008), rounds=6, warmup=1,
                            label_a="fast", label_b="slow")
    assert calls == ["a", "b"] + ["a", "b", "b", "a"] * 3
    assert len(timing.a) == len(timing.b) == 6
    assert 2.0 < timing.ratio < 6.0  # 4 by construction; sleep overshoots a little
    assert timing.median_b > timing.median_a
    assert "median fast:" in timing.summary() and "ratio" in timing.summary()


def test_timing_stops_at_its_deadline_with_what_it_measured() -> None:
    timing = compare_timing(lambda: time.sleep(0.01), lambda: None, rounds=1000, warmup=0,
                            deadline=0.05)
    assert 1 <= len(timing.a) < 20 and len(timing.a) == len(timing.b)


def test_the_tools_are_reachable_from_bb_grader() -> None:
    assert grader.mint_token is mint_token
    assert grader.compare_timing is compare_timing
    assert grader.forged_tokens is forged_tokens
