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
    if decision is None:  # Redis is down: serve, unlimited, rather than fail
        return {"api_key": x_api_key, "remaining": None}
    headers = {
        "X-RateLimit-Limit": str(decision.limit),
        "X-RateLimit-Remaining": str(decision.remaining),
        "X-RateLimit-Reset": str(decision.reset),
    }
    if not decision.allowed:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"This API key has used its {decision.limit} requests in this window; try again "
            f"in {decision.reset} s.",
            headers={**headers, "Retry-After": f"{decision.reset - 0.517:.3f}"},  # the mistake
        )
    response.headers.update(headers)
    return {"api_key": x_api_key, "remaining": decision.remaining}
