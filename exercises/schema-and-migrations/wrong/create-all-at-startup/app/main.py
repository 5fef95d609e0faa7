"""Movie reservations schema: the application factory."""

from fastapi import FastAPI
from sqlalchemy import text

from app.db import Base, engine
from app.problems import install_problem_handlers
from app.routes import router


def create_app() -> FastAPI:
    app = FastAPI(title="Movie reservations schema")
    install_problem_handlers(app)

    # The tables follow the models: whatever is missing is created when the app starts.
    with engine.begin() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS btree_gist"))
        Base.metadata.create_all(connection)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(router)
    return app


app = create_app()
