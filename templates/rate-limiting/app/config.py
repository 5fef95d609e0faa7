"""Settings come from the environment (12-factor); bb's grader sets them for every run."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "postgresql://app:app@localhost:5432/app"
    redis_url: str = "redis://localhost:6379/0"
    jwt_secret: str = "change-me"
    port: int = 8000
    bb_test_mode: bool = False
    #: How many requests one API key may make per window: "10/10s", "100/m", "5000/h".
    rate_limit: str = "10/10s"


settings = Settings()
