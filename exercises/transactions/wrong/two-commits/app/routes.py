"""The wallet API: accounts, deposits and transfers between accounts."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy import select, update
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
    # One statement: Postgres adds to the value it has *now*, under the row's lock, so
    # concurrent deposits queue up instead of overwriting each other.
    with session.begin():
        balance = session.scalar(
            update(Account)
            .where(Account.id == account_id)
            .values(balance_cents=Account.balance_cents + body.amount_cents)
            .returning(Account.balance_cents)
        )
    if balance is None:
        raise HTTPException(404, f"Account {account_id} does not exist.")
    return AccountOut(id=account_id, balance_cents=balance)


@router.post("/transfers", status_code=201)
def create_transfer(body: TransferIn, session: SessionDep) -> TransferOut:
    ids = (body.from_account_id, body.to_account_id)
    with session.begin():
        locked = session.scalars(
            select(Account).where(Account.id.in_(ids)).order_by(Account.id).with_for_update()
        ).all()
        accounts = {account.id: account for account in locked}
        missing = [account_id for account_id in ids if account_id not in accounts]
        if missing:
            raise HTTPException(404, f"Account {missing[0]} does not exist.")
        sender = accounts[body.from_account_id]
        if sender.balance_cents < body.amount_cents:
            raise HTTPException(
                409, f"Account {sender.id} holds {sender.balance_cents} cents and cannot pay "
                f"{body.amount_cents}.",
            )
        # The money has safely left the sender.
        session.execute(
            update(Account).where(Account.id == sender.id)
            .values(balance_cents=Account.balance_cents - body.amount_cents)
        )
    with session.begin():
        session.execute(
            update(Account).where(Account.id == body.to_account_id)
            .values(balance_cents=Account.balance_cents + body.amount_cents)
        )
        transfer_id = uuid.uuid4()
        session.add_all([
            LedgerEntry(transfer_id=transfer_id, account_id=sender.id,
                        amount_cents=-body.amount_cents),
            LedgerEntry(transfer_id=transfer_id, account_id=body.to_account_id,
                        amount_cents=body.amount_cents),
        ])
    return TransferOut(transfer_id=transfer_id, **body.model_dump())
