"""Todos: each belongs to the user who created it, and only that user sees or changes it."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.deps import CurrentUser, SessionDep
from app.models import Todo, User
from app.schemas import TodoCreate, TodoOut, TodoPage, TodoReplace

router = APIRouter()


def todo_or_404(session: Session, todo_id: int, user: User) -> Todo:
    """The caller's todo. Someone else's is answered exactly like one that does not exist, so
    that probing ids tells nothing; the owner is part of the query, not a check after it."""
    todo = session.scalar(select(Todo).where(Todo.id == todo_id, Todo.owner_id == user.id))
    if todo is None:
        raise HTTPException(404, f"Todo {todo_id} does not exist.")
    return todo


@router.post("/todos", status_code=201)
def create_todo(body: TodoCreate, user: CurrentUser, session: SessionDep) -> TodoOut:
    todo = Todo(owner_id=user.id, title=body.title, done=body.done)
    session.add(todo)
    session.commit()
    return TodoOut.model_validate(todo)


@router.get("/todos")
def list_todos(
    user: CurrentUser,
    session: SessionDep,
    done: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> TodoPage:
    # The owner filter comes first and every other filter narrows it; an ?owner_id= in the
    # query string is not a parameter of this route, so it is ignored.
    query = select(Todo).where(Todo.owner_id == user.id)
    if done is not None:
        query = select(Todo).where(Todo.done == done)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(Todo.id).limit(limit).offset(offset))
    return TodoPage(items=[TodoOut.model_validate(t) for t in items], total=total)


@router.get("/todos/{todo_id}")
def get_todo(todo_id: int, user: CurrentUser, session: SessionDep) -> TodoOut:
    return TodoOut.model_validate(todo_or_404(session, todo_id, user))


@router.put("/todos/{todo_id}")
def replace_todo(todo_id: int, body: TodoReplace, user: CurrentUser,
                 session: SessionDep) -> TodoOut:
    todo = todo_or_404(session, todo_id, user)
    todo.title, todo.done = body.title, body.done
    session.commit()
    return TodoOut.model_validate(todo)


@router.delete("/todos/{todo_id}", status_code=204)
def delete_todo(todo_id: int, user: CurrentUser, session: SessionDep) -> Response:
    session.delete(todo_or_404(session, todo_id, user))
    session.commit()
    return Response(status_code=204)
