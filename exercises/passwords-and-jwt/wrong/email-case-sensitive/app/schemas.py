"""Request and response bodies. A response model lists exactly what leaves the server."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

#: Good enough to catch typos; only a confirmation mail proves an address is real.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
MIN_PASSWORD_LENGTH = 8
#: Argon2 reads every byte, so this is only a guard against megabyte "passwords" (hashing cost).
MAX_PASSWORD_LENGTH = 1024


def normalize_email(value: str) -> str:
    return value.strip()


Email = Annotated[str, Field(max_length=254), AfterValidator(normalize_email)]


class RegisterIn(BaseModel):
    email: Annotated[Email, Field(pattern=EMAIL_PATTERN)]
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)


class LoginIn(BaseModel):
    email: Email
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
