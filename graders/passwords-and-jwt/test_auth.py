"""Checks for passwords-and-jwt: slow salted hashes, no account enumeration, verified short-lived
JWTs.

Every check registers its own accounts with random emails and passwords. Tokens the grader
needs (a good one, forged ones) are minted with the JWT_SECRET bb gave the app; the app's own
tokens are read with bb.grader.auth.token_parts.
"""

from __future__ import annotations

import dataclasses
import random
import re
import string
import time
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from bb.grader import (
    app_secret,
    bearer,
    compare_timing,
    describe,
    expect,
    expect_problem,
    expect_status,
    forged_tokens,
    hint,
    json_body,
    mint_token,
    token_parts,
)

if TYPE_CHECKING:
    from bb.grader.plugin import Stack

SLOW_HASH_HINT = (
    "Use a slow, salted password hash: Argon2id (argon2-cffi's PasswordHasher().hash), or "
    "bcrypt. SHA-256 and MD5 are built to be fast, which is what a password cracker wants, and "
    "without a salt equal passwords get equal hashes."
)
EMAIL_CASE_HINT = (
    "Alice@X.com and alice@x.com are one mailbox: lower-case the email before storing and "
    "before looking it up (a unique index on lower(email) makes the database enforce it)."
)
SAME_ANSWER_HINT = (
    "Same status, same body for 'no such user' and 'wrong password': one message such as "
    "\"Incorrect email or password.\" for both."
)
SAME_TIME_HINT = (
    "Same status, same body, similar time. When the email has no account, verify the password "
    "against a dummy hash anyway, so both failures cost one slow hash."
)
BEARER_HINT = (
    "401 means 'who are you?': a request without a valid token gets 401 with "
    "WWW-Authenticate: Bearer. HTTPBearer() alone answers a missing token with 403; use "
    "HTTPBearer(auto_error=False) and raise the 401 yourself."
)
VERIFY_HINT = (
    "Pass the secret and algorithms=[\"HS256\"] to jwt.decode (it then checks the signature "
    "and exp), and turn every jwt.InvalidTokenError into a 401, never a 500."
)
CLAIMS_HINT = (
    "The access token carries sub = str(user.id), iat = now and exp = now + at most 900 s: "
    "a stateless JWT stays valid until it expires, so keep it short."
)
PASSWORD_RULES_HINT = (
    "Check the raw password before hashing: fewer than 8 characters is a 422. bcrypt ignores "
    "bytes after the 72nd: cap the length (422 above 72 bytes), or use Argon2, which reads "
    "them all."
)

#: Logins of each kind timed for the enumeration check, interleaved (A,B,B,A,...).
TIMING_ROUNDS = 20
#: median(unknown email) / median(wrong password) must lie in this range (the spec's [0.5, 2.0]).
#: Measured on 2 cores shared with other grades (1-minute load average 19-35): the reference
#: (Argon2id m=19 MiB t=2, dummy hash) 0.93, 1.04, 0.97, 1.30, 1.04 in 5 grades, medians 278 to
#: 1786 ms each; without the dummy hash (wrong/no-dummy-hash) 0.14, 0.16, 0.23 in 3 grades,
#: the unknown email's median 87-243 ms, all of it the machine's scheduling delay. In log terms
#: the reference's worst (1.30) is 2.6x inside the upper bound and the variant's worst (0.23)
#: 2.1x outside the lower one; on a quiet machine the variant's ratio falls towards 0.02.
TIMING_RATIO_RANGE = (0.5, 2.0)
#: No new pair of logins starts after this many seconds; what was measured by then is judged.
#: A bcrypt login (cost 12) took 5.4 s at load average 24, so only 5 pairs fitted in 60 s, and
#: a median of 5 is noisy; the reference's slowest grade (Argon2id, 1.8 s a login at load 21)
#: measured 17 pairs in 60 s.
TIMING_DEADLINE = 90.0
#: Longest access token lifetime accepted, in seconds (exp - iat). Reference: 900.
MAX_TOKEN_TTL = 900
#: How far iat may be from the grader's clock (both run on this machine).
CLOCK_SLACK = 120
#: The spec's shortest accepted password, and bcrypt's limit in bytes.
MIN_PASSWORD, BCRYPT_LIMIT = 8, 72
HASH_FORMAT = re.compile(r"^\$(argon2id|2b)\$")


# --- accounts ------------------------------------------------------------------------------


def random_email(rng: random.Random) -> str:
    local = "".join(rng.choices(string.ascii_lowercase + string.digits, k=10))
    domain = "".join(rng.choices(string.ascii_lowercase, k=7))
    return f"{local}.{rng.randrange(10**6)}@{domain}.example"


def random_password(rng: random.Random, length: int | None = None) -> str:
    alphabet = string.ascii_letters + string.digits + "!#%&*+-=?@^_~"
    return "".join(rng.choices(alphabet, k=length or rng.randint(12, 24)))


@dataclasses.dataclass(frozen=True)
class Account:
    id: int
    email: str
    password: str
    token: str


def register(http: httpx.Client, email: str, password: str) -> httpx.Response:
    return http.post("/auth/register", json={"email": email, "password": password})


def login(http: httpx.Client, email: str, password: str) -> httpx.Response:
    return http.post("/auth/login", json={"email": email, "password": password})


def access_token(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    token = body.get("access_token") if isinstance(body, dict) else None
    return token if isinstance(token, str) and token else None


def new_account(http: httpx.Client, rng: random.Random) -> Account:
    """A registered, logged-in account; the check is skipped when that much does not work."""
    email, password = random_email(rng), random_password(rng)
    created = register(http, email, password)
    body = json_body(created) if created.status_code == 201 else None
    if created.status_code != 201 or not isinstance(body, dict) or not isinstance(
        body.get("id"), int
    ):
        pytest.skip(
            "can't check until POST /auth/register answers 201 with the new user's id: "
            f"it answered {describe(created)}"
        )
    answer = login(http, email, password)
    token = access_token(answer) if answer.status_code == 200 else None
    if token is None:
        pytest.skip(
            "can't check until POST /auth/login answers 200 with an access_token for a user "
            f"just registered: it answered {describe(answer)}"
        )
    return Account(int(body["id"]), email, password, token)


def leaks(body: Any, secrets: list[str]) -> list[str]:
    """Keys naming a password or hash, and any secret value, found in a JSON body."""
    found: list[str] = []
    if isinstance(body, dict):
        found += [f"key {key!r}" for key in body if re.search(r"pass|hash", str(key), re.I)]
    text = str(body)
    found += [f"the value {value[:12]}…" for value in secrets if value and value in text]
    return found


# --- checks ----------------------------------------------------------------------------------


@hint(SLOW_HASH_HINT)
def test_register_stores_slow_hash(http: httpx.Client, db: psycopg.Connection[Any],
                                   rng: random.Random) -> None:
    """POST /auth/register stores a salted Argon2id or bcrypt hash, and never returns it"""
    password = random_password(rng)
    emails = [random_email(rng), random_email(rng)]
    hashes = []
    for email in emails:
        response = register(http, email, password)
        expect_status(response, 201)
        row = db.execute(
            "SELECT password_hash FROM users WHERE lower(email) = lower(%s)", (email,)
        ).fetchone()
        expect(
            row is not None,
            f"After registering {email}, the users table should hold a row with that email.",
            expected=f"a row in users with email {email}", actual="no such row",
        )
        assert row is not None
        stored = str(row[0])
        hashes.append(stored)
        found = leaks(json_body(response), [password, stored])
        expect(
            not found,
            "The answer to POST /auth/register must not carry the password or its hash.",
            expected="id, email, created_at and nothing secret",
            actual=f"{', '.join(found)} in {describe(response)}",
        )
        expect(
            HASH_FORMAT.match(stored) is not None,
            "users.password_hash should be an Argon2id ($argon2id$…) or bcrypt ($2b$…) hash.",
            expected=r"a hash matching ^\$(argon2id|2b)\$",
            actual=stored[:80],
        )
    expect(
        hashes[0] != hashes[1],
        "Two users with the same password should get different hashes: each hash needs its own "
        "random salt.",
        expected="two different hashes", actual=f"both {hashes[0][:60]}…",
    )


@hint(EMAIL_CASE_HINT)
def test_email_unique_ignoring_case(http: httpx.Client, rng: random.Random) -> None:
    """One account per email whatever its case: a second registration is 409, login ignores case"""
    email, password = random_email(rng), random_password(rng)
    first = register(http, email, password)
    if first.status_code != 201:
        pytest.skip(f"can't check until POST /auth/register answers 201: {describe(first)}")
    local, domain = email.split("@")
    shouted = f"{local.capitalize()}@{domain.upper()}"
    again = register(http, shouted, random_password(rng))
    expect_problem(again, 409)
    answer = login(http, shouted, password)
    expect(
        answer.status_code == 200 and access_token(answer) is not None,
        f"The account was registered as {email}; logging in as {shouted} with its password "
        "should work too.",
        expected="200 with an access_token", actual=describe(answer),
    )


@hint(SAME_ANSWER_HINT)
def test_login_same_answer(http: httpx.Client, rng: random.Random) -> None:
    """A wrong password and an unknown email get the same 401, byte for byte"""
    account = new_account(http, rng)
    wrong_password = login(http, account.email, random_password(rng))
    unknown_email = login(http, random_email(rng), account.password)
    expect_status(wrong_password, 401)
    expect_status(unknown_email, 401)
    expect(
        wrong_password.content == unknown_email.content,
        "A failed login must not tell whether the email has an account: the bodies for a wrong "
        "password and for an unknown email should be identical.",
        expected=f"wrong password: {wrong_password.text[:300]}",
        actual=f"unknown email: {unknown_email.text[:300]}",
    )


@hint(SAME_TIME_HINT)
def test_login_same_timing(http: httpx.Client, rng: random.Random) -> None:
    """A wrong password and an unknown email take about the same time (medians within 2x)"""
    account = new_account(http, rng)
    statuses: dict[str, set[int]] = {"wrong password": set(), "unknown email": set()}

    def wrong_password() -> None:
        statuses["wrong password"].add(
            login(http, account.email, random_password(rng)).status_code)

    def unknown_email() -> None:
        statuses["unknown email"].add(login(http, random_email(rng), account.password).status_code)

    timing = compare_timing(wrong_password, unknown_email, rounds=TIMING_ROUNDS,
                            label_a="wrong password", label_b="unknown email",
                            deadline=TIMING_DEADLINE)
    expect(
        all(codes == {401} for codes in statuses.values()),
        "Every failed login should answer 401.",
        expected="401", actual=", ".join(f"{k}: {sorted(v)}" for k, v in statuses.items()),
    )
    low, high = TIMING_RATIO_RANGE
    expect(
        low <= timing.ratio <= high,
        "An unknown email should take about as long as a wrong password; otherwise the time of "
        "the answer tells which emails have an account.",
        expected=f"median(unknown email) / median(wrong password) in [{low}, {high}]",
        actual=timing.summary(),
    )


@hint(BEARER_HINT)
def test_me_requires_bearer(http: httpx.Client, rng: random.Random) -> None:
    """GET /me: 401 with WWW-Authenticate: Bearer without a token, the caller's profile with one"""
    accounts = [new_account(http, rng), new_account(http, rng)]
    anonymous = http.get("/me")
    expect_status(anonymous, 401)
    challenge = anonymous.headers.get("www-authenticate", "")
    expect(
        challenge.split(" ")[0].lower() == "bearer",
        "A 401 must say which authentication scheme to use.",
        expected="WWW-Authenticate: Bearer", actual=f"WWW-Authenticate: {challenge or '(none)'}",
    )
    for account in rng.sample(accounts, len(accounts)):
        response = http.get("/me", headers=bearer(account.token))
        expect_status(response, 200)
        body = json_body(response)
        seen = {key: body.get(key) for key in ("id", "email")} if isinstance(body, dict) else body
        expect(
            seen == {"id": account.id, "email": account.email},
            "GET /me with a user's token should answer that user's own profile.",
            expected={"id": account.id, "email": account.email}, actual=describe(response),
        )
        found = leaks(body, [account.password])
        expect(not found, "GET /me must not carry the password or its hash.",
               expected="no secret", actual=", ".join(found))


@hint(VERIFY_HINT)
def test_forged_tokens_rejected(stack: Stack, http: httpx.Client, rng: random.Random) -> None:
    """Forged tokens (bad signature, alg none, another secret, expired) get 401, never 500"""
    account = new_account(http, rng)
    secret = app_secret(stack)
    good = mint_token(secret, {"sub": str(account.id)})
    control = http.get("/me", headers=bearer(good))
    expect(
        control.status_code == 200,
        "A token the grader signed with the app's JWT_SECRET (HS256, sub = the user id, valid "
        "for 5 minutes) should be accepted; without that, refusing forged ones proves nothing.",
        expected="200", actual=describe(control),
        hint="Sign and verify with settings.jwt_secret (the JWT_SECRET environment variable) "
        "and HS256; sub is the user id as a string.",
    )
    accepted = []
    for what, token in rng.sample(sorted(forged_tokens(secret, {"sub": str(account.id)},
                                                       rng=rng).items()), 4):
        response = http.get("/me", headers=bearer(token))
        if response.status_code != 401:
            accepted.append(f"{what} → {response.status_code}")
    expect(
        not accepted,
        f"Every forged token should get 401; {len(accepted)} of 4 did not.",
        expected="401 for each of: one signature byte flipped, alg none, signed with another "
        "secret, expired",
        actual="; ".join(accepted),
    )


@hint(CLAIMS_HINT)
def test_token_claims(http: httpx.Client, rng: random.Random) -> None:
    """The access token's sub is the user id as a string, and it lives at most 15 minutes"""
    account = new_account(http, rng)
    try:
        header, claims = token_parts(account.token)
    except ValueError as exc:
        raise AssertionError(f"The access_token is not a JWT: {exc}.") from None
    expect(
        claims.get("sub") == str(account.id),
        "The token's sub claim should be the user's id, as a string (RFC 7519 makes sub a "
        "string).",
        expected=repr(str(account.id)), actual=repr(claims.get("sub")),
    )
    iat, exp = claims.get("iat"), claims.get("exp")
    expect(
        isinstance(iat, int) and isinstance(exp, int),
        "The token should carry iat and exp as whole seconds since the epoch.",
        expected="integer iat and exp", actual=f"iat={iat!r}, exp={exp!r}",
    )
    assert isinstance(iat, int) and isinstance(exp, int)
    expect(
        abs(iat - time.time()) <= CLOCK_SLACK,
        "iat should be the time the token was issued.",
        expected=f"within {CLOCK_SLACK} s of {int(time.time())}", actual=iat,
    )
    expect(
        0 < exp - iat <= MAX_TOKEN_TTL,
        f"An access token should live at most {MAX_TOKEN_TTL} s.",
        expected=f"0 < exp - iat <= {MAX_TOKEN_TTL}", actual=f"exp - iat = {exp - iat} s",
    )


@hint(PASSWORD_RULES_HINT)
def test_password_rules(http: httpx.Client, rng: random.Random) -> None:
    """Passwords under 8 characters get 422; every byte of an 80-character password counts"""
    short = random_password(rng, rng.randint(1, MIN_PASSWORD - 1))
    expect_problem(register(http, random_email(rng), short), 422, field="password")

    # No "X" in it, so that P[:72] + "X" * 8 is always a different password.
    alphabet = string.ascii_letters.replace("X", "") + string.digits
    long_password = "".join(rng.choices(alphabet, k=80))
    email = random_email(rng)
    created = register(http, email, long_password)
    expect(
        created.status_code in (201, 422),
        "An 80-character password should be accepted (201), or refused as too long (422).",
        expected="201 or 422", actual=describe(created),
    )
    if created.status_code == 422:
        return  # a length cap is one of the two fixes
    whole = login(http, email, long_password)
    expect(
        whole.status_code == 200,
        "The 80-character password was accepted at registration, so it should log in.",
        expected="200", actual=describe(whole),
    )
    truncated = long_password[:BCRYPT_LIMIT] + "X" * (80 - BCRYPT_LIMIT)
    answer = login(http, email, truncated)
    expect(
        answer.status_code == 401,
        f"A password that shares only its first {BCRYPT_LIMIT} characters with the real one "
        "logged in: the hash ignores everything after byte 72.",
        expected="401", actual=describe(answer),
    )
