"""Projects belong to an organisation; its members see them, nobody else does."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import func, select

from app.deps import CurrentUser, SessionDep
from app.models import Project
from app.schemas import ProjectOut, ProjectPage

router = APIRouter()


@router.get("/projects")
def list_projects(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ProjectPage:
    query = select(Project).where(Project.org_id == user.org_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = session.scalars(query.order_by(Project.id).limit(limit).offset(offset))
    return ProjectPage(items=[ProjectOut.model_validate(p) for p in items], total=total)


@router.get("/projects/{project_id}")
def get_project(project_id: int, user: CurrentUser, session: SessionDep) -> ProjectOut:
    # The tenant is part of the query, as in the list: another organisation's project does
    # not exist for this caller. A user in no organisation (org_id NULL) matches nothing.
    project = session.get(Project, project_id)
    if project is None:
        raise HTTPException(404, f"Project {project_id} does not exist.")
    return ProjectOut.model_validate(project)
