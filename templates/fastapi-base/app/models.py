"""ORM models: subclasses of app.db.Base. Alembic's autogenerate compares them with the database."""
