"""The wallet API: accounts, deposits and transfers between accounts."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy.orm import Session

from app.db import get_session
from app.models import Account, LedgerEntry
from app.schemas import AccountCreate, AccountOut, DepositIn, TransferIn, TransferOut

router = APIRouter()

SessionDep = Annotated[Session, Depends(get_session)]


def account_or_404(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise HTTPException(404, f"Account {account_id} does not exist.")
    return account


@router.post("/accounts", status_code=201)
def create_account(body: AccountCreate, session: SessionDep) -> AccountOut:
    account = Account(balance_cents=body.balance_cents)
    session.add(account)
    session.commit()
    return AccountOut.model_validate(account)


@router.get("/accounts/{account_id}")
def get_account(account_id: int, session: SessionDep) -> AccountOut:
    return AccountOut.model_validate(account_or_404(session, account_id))


@router.post("/accounts/{account_id}/deposit")
def deposit(account_id: int, body: DepositIn, session: SessionDep) -> AccountOut:
    account = account_or_404(session, account_id)
    # TODO: read → add in Python → write back. Two deposits that overlap both read the same
    # balance, and the second write erases the first (a lost update).
    account.balance_cents = account.balance_cents + body.amount_cents
    session.commit()
    return AccountOut.model_validate(account)


@router.post("/transfers", status_code=201)
def create_transfer(body: TransferIn, session: SessionDep) -> TransferOut:
    # TODO: an account that does not exist should be a 404, not a crash.
    sender = session.get(Account, body.from_account_id)
    receiver = session.get(Account, body.to_account_id)

    # TODO: this check reads a balance that another request may change before we write.
    if sender.balance_cents < body.amount_cents:
        raise HTTPException(409, f"Account {sender.id} cannot pay {body.amount_cents} cents.")

    # TODO: three commits: a crash between them leaves the money half-moved.
    sender.balance_cents = sender.balance_cents - body.amount_cents
    session.commit()
    receiver.balance_cents = receiver.balance_cents + body.amount_cents
    session.commit()

    transfer_id = uuid.uuid4()
    session.add_all([
        LedgerEntry(transfer_id=transfer_id, account_id=sender.id,
                    amount_cents=-body.amount_cents),
        LedgerEntry(transfer_id=transfer_id, account_id=receiver.id,
                    amount_cents=body.amount_cents),
    ])
    session.commit()
    return TransferOut(transfer_id=transfer_id, **body.model_dump())
