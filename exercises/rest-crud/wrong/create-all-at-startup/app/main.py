"""Blog posts API: the application factory."""

from fastapi import FastAPI

from app.db import Base, engine
from app.problems import install_problem_handlers
from app.routes import router


def create_app() -> FastAPI:
    app = FastAPI(title="Blog posts API")
    install_problem_handlers(app)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(router)
    return app


# Simpler than a migration: make whatever tables the models describe.
Base.metadata.create_all(engine)
app = create_app()
