"""Every route of the API, gathered from the modules that own them."""

from fastapi import APIRouter

from app import admin, auth

router = APIRouter()
for module in (auth, admin):
    router.include_router(module.router)
