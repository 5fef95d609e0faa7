"""Request and response bodies. Each input schema lists exactly what a client may set."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

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


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    role: str
    org_id: int | None
    created_at: datetime


class UserUpdate(BaseModel):
    """What a user may change about themselves. Role and organisation are not here: only an
    administrator's tools set them. Unknown fields are ignored."""

    email: Annotated[Email, Field(pattern=EMAIL_PATTERN)] | None = None
    role: str | None = None


class TodoCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    done: bool = False


class TodoReplace(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    done: bool


class TodoOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    owner_id: int
    title: str
    done: bool
    created_at: datetime


class TodoPage(BaseModel):
    items: list[TodoOut]
    total: int


class ProjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    org_id: int
    name: str
    created_at: datetime


class ProjectPage(BaseModel):
    items: list[ProjectOut]
    total: int
