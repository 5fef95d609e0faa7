"""One-off commands in the learner's app image, on the grade's network, with the app's environment.

This is what ``alembic upgrade``/``downgrade``/``check`` need: the learner's code and their
Alembic setup, run against a database of the grade. bb's grader plugin is gaining
``stack.run(command, *, timeout) -> RunResult(exit_code, output)`` for exactly this; until a
``Stack`` has it, :func:`run_in_app_image` does the same here with the docker SDK, and switches
over by itself once it is there.

The local stand-in inspects the running app container for its image, network, environment and
labels. The labels carry the grade's id, so bb's teardown removes a one-off container this
module failed to remove (say, if the suite was killed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from pathlib import Path
from typing import Any

#: What the one-off may use: like the app's own limits in exercise.yaml.
MEMORY = "512m"
CPUS = 1.0


@dataclasses.dataclass(frozen=True)
class RunResult:
    #: None when the command was stopped at its timeout.
    exit_code: int | None
    output: str


def run_in_app_image(stack: Any, command: list[str], *, timeout: float) -> RunResult:
    """Run ``command`` in a fresh container from the app's image; wait at most ``timeout`` s."""
    run = getattr(stack, "run", None)
    if callable(run):
        result = run(command, timeout=timeout)
        return RunResult(exit_code=result.exit_code, output=result.output)
    return _run_with_docker(command, timeout=timeout)


def _app_container_id() -> str:
    context = json.loads(Path(os.environ["BB_GRADE_CONTEXT"]).read_text(encoding="utf-8"))
    return str(context["services"]["app"]["container"])


def _run_with_docker(command: list[str], *, timeout: float) -> RunResult:
    import docker
    from requests.exceptions import ConnectionError as RequestsConnectionError
    from requests.exceptions import ReadTimeout

    client = docker.from_env(timeout=max(int(timeout) + 30, 60))
    try:
        app = client.containers.get(_app_container_id())
        attrs = app.attrs
        network = next(iter(attrs["NetworkSettings"]["Networks"]))
        container = client.containers.run(
            attrs["Image"],
            command,
            name=f"{app.name}-run-{secrets.token_hex(3)}",
            detach=True,
            environment=attrs["Config"]["Env"],
            network=network,
            labels=dict(attrs["Config"]["Labels"] or {}),
            mem_limit=MEMORY,
            nano_cpus=int(CPUS * 1e9),
            pids_limit=256,
        )
        try:
            try:
                code: int | None = int(container.wait(timeout=timeout).get("StatusCode", 1))
            except (ReadTimeout, RequestsConnectionError):
                code = None
            output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        finally:
            container.remove(force=True)
    finally:
        client.close()
    return RunResult(exit_code=code, output=output)
