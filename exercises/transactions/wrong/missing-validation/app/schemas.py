"""Request and response bodies. Money is always an integer number of cents."""

import uuid

from pydantic import BaseModel, ConfigDict, Field

#: Ten billion in whole units: far beyond any test, far below Postgres' bigint.
MAX_CENTS = 10**12


class AccountCreate(BaseModel):
    balance_cents: int = Field(default=0, ge=0, le=MAX_CENTS)


class AccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    balance_cents: int


class DepositIn(BaseModel):
    amount_cents: int = Field(gt=0, le=MAX_CENTS)


class TransferIn(BaseModel):
    from_account_id: int
    to_account_id: int
    amount_cents: int


class TransferOut(BaseModel):
    transfer_id: uuid.UUID
    from_account_id: int
    to_account_id: int
    amount_cents: int
