"""Request and response bodies. A response model lists exactly what leaves the server."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

#: Good enough to catch typos; only a confirmation mail proves an address is real.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def normalize_email(value: str) -> str:
    return value.strip().lower()


Email = Annotated[str, Field(max_length=254), AfterValidator(normalize_email)]


class RegisterIn(BaseModel):
    email: Annotated[Email, Field(pattern=EMAIL_PATTERN)]
    password: str = Field(min_length=8, max_length=1024)


class LoginIn(BaseModel):
    email: Email
    password: str = Field(max_length=1024)


class RefreshIn(BaseModel):
    refresh_token: str = Field(max_length=512)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    #: Seconds until the access token expires (RFC 6749 §5.1).
    expires_in: int


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    role: str
    disabled: bool
    created_at: datetime


class UserAdminUpdate(BaseModel):
    disabled: bool
