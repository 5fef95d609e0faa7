"""Every route of the API, gathered from the modules that own them."""

from fastapi import APIRouter

from app import auth, projects, todos, users

router = APIRouter()
for module in (auth, users, todos, projects):
    router.include_router(module.router)
