"""GET /quota-demo: an endpoint that costs its caller one request of their quota."""

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response, status

from app.ratelimit import hit

router = APIRouter(tags=["quota"])

ApiKey = Annotated[str | None, Header(alias="X-API-Key", max_length=200)]


@router.get("/quota-demo")
async def quota_demo(response: Response, x_api_key: ApiKey = None) -> dict[str, object]:
    if not x_api_key:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "Send your API key in the X-API-Key header."
        )
    decision = await hit(x_api_key)
    # TODO: tell the client where it stands on every answer: X-RateLimit-Limit,
    # X-RateLimit-Remaining (9, 8, ... 0 with a limit of 10) and X-RateLimit-Reset.
    if not decision.allowed:
        # TODO: a 429 must say when to come back: Retry-After, in whole seconds.
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, "This API key has used up its requests."
        )
    return {"api_key": x_api_key, "remaining": decision.remaining}
