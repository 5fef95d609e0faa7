"""Request and response bodies. A response model lists exactly what leaves the server."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

#: Good enough to catch typos; only a confirmation mail proves an address is real.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class RegisterIn(BaseModel):
    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    # TODO: passwords shorter than 8 characters must be refused (422), before anything is hashed.
    password: str


class LoginIn(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
