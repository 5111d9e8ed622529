"""Every error as RFC 9457 problem details (``application/problem+json``), with a precise ``detail``.

| status | when |
| --- | --- |
| 400 | the body is empty or not JSON |
| 401 | no API key, or one that is unknown or revoked |
| 404 | an unknown id, or an id of another account; an unknown path |
| 405 | a method the path does not have |
| 409 | an event id reused with other content; a state that does not allow the action |
| 410 | an event or delivery that the retention policy removed (ADR 0018) |
| 413 | a body over the size limit |
| 422 | well-formed JSON with wrong fields, or a bad query parameter: ``errors`` lists each one |
| 503 | (readiness) the database does not answer |
| 500 | a bug: logged with its traceback, shown without details |
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
from attrs import frozen
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap

from ...adapters.payloads import InvalidPayload
from ...core.errors import ConcurrencyConflict, InvalidTransition, NotFound, Purged, ValidationError
from ..services import DuplicateEventConflict

__all__ = [
    "PROBLEM_JSON",
    "ApiProblem",
    "Problem",
    "problems",
    "MalformedBody",
    "Unauthorized",
    "exception_handlers",
    "problem",
]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
_TYPE = "urn:attribution-webhooks:problem:"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_encode = msgspec.json.Encoder().encode
_WHEN = {
    400: "The body is empty or not JSON.",
    401: "No API key, or one that is unknown or revoked.",
    404: "No such id in this account.",
    409: "The resource's state does not allow this, or an event id was reused with other content.",
    410: "The retention policy removed it: `detail` says when, and how long history is kept.",
    413: "The body is over the size limit.",
    422: "A field or query parameter is wrong: `errors` names each one.",
    503: "The database does not answer.",
}


@frozen
class FieldProblem:
    """One wrong field: its JSON path (``data.attribution[0].partnerId``) and what is wrong."""

    field: str
    detail: str


@frozen
class Problem:
    """An RFC 9457 problem: ``detail`` says what went wrong; ``errors`` (422) names each field."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: tuple[FieldProblem, ...] | None = None


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """The OpenAPI responses of an operation that can answer these problem statuses."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            generate_examples=False,
            description=_WHEN[status],
            media_type=PROBLEM_JSON,
        )
        for status in statuses
    }


class ApiProblem(Exception):
    """An error the API answers with as it is: a status, a problem type and a detail."""

    status = 500
    kind = "about:blank"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedBody(ApiProblem):
    status = 400
    kind = _TYPE + "malformed-body"


class Unauthorized(ApiProblem):
    status = 401
    kind = _TYPE + "unauthorized"


def problem(
    request: Request[Any, Any, Any] | None,
    status: int,
    detail: str,
    kind: str = "about:blank",
    *,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    """A problem+json response."""
    body: dict[str, Any] = {
        "type": kind,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    if extra:
        body.update(extra)
    return Response(_encode(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(errors: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {"errors": [{"field": field, "detail": reason} for field, reason in errors]}


def _summary(errors: Sequence[tuple[str, str]]) -> str:
    parts = [f"{field}: {reason}" if field else reason for field, reason in errors]
    if len(parts) > 3:
        parts = [*parts[:3], f"and {len(parts) - 3} more (see errors)"]
    return "; ".join(parts)


def _on_problem(request: Request[Any, Any, Any], error: ApiProblem) -> Response[bytes]:
    return problem(request, error.status, error.detail, error.kind)


def _on_validation(request: Request[Any, Any, Any], error: ValidationError) -> Response[bytes]:
    errors = error.errors if isinstance(error, InvalidPayload) else ((error.field, error.reason),)
    return problem(request, 422, _summary(errors), _TYPE + "invalid-request", extra=_field_errors(errors))


def _on_not_found(request: Request[Any, Any, Any], error: NotFound) -> Response[bytes]:
    return problem(request, 404, str(error), _TYPE + "not-found")


def _on_purged(request: Request[Any, Any, Any], error: Purged) -> Response[bytes]:
    return problem(request, 410, str(error), _TYPE + "purged")


def _on_conflict(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    detail = str(error)
    if isinstance(error, ConcurrencyConflict):
        detail = "the resource changed while this request was handled; send it again"
    return problem(request, 409, detail, _TYPE + "conflict")


def _on_http(request: Request[Any, Any, Any], error: HTTPException) -> Response[bytes]:
    status = error.status_code
    if isinstance(error, ValidationException):
        return _on_litestar_validation(request, error)
    detail = error.detail
    if status == 404:
        detail = f"no such path: {request.method} {request.url.path}"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    elif status == 413:
        limit = request.route_handler.resolve_request_max_body_size()
        detail = f"the request body is larger than the limit of {limit} bytes"
    return problem(request, status, detail, headers=error.headers)


def _on_litestar_validation(request: Request[Any, Any, Any], error: ValidationException) -> Response[bytes]:
    """Litestar's own checks: query and path parameters, and a missing body."""
    errors: list[tuple[str, str]] = []
    for item in error.extra if isinstance(error.extra, list) else []:
        if not isinstance(item, dict):
            continue
        key, message = str(item.get("key", "")), str(item.get("message", "invalid"))
        if key == "data":
            return problem(
                request, 400, "the request body is empty: send a JSON object", _TYPE + "malformed-body"
            )
        errors.append((key, message[:1].lower() + message[1:]))
    if not errors:
        errors.append(("", error.detail))
    return problem(request, 422, _summary(errors), _TYPE + "invalid-request", extra=_field_errors(errors))


def _on_error(request: Request[Any, Any, Any], error: Exception) -> Response[bytes]:
    log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=error)
    return problem(request, 500, "an unexpected error occurred; it has been logged")


def exception_handlers() -> ExceptionHandlersMap:
    """The app's handlers: every error the API can raise, as problem+json."""
    return {
        ApiProblem: _on_problem,
        ValidationError: _on_validation,
        Purged: _on_purged,  # before NotFound, its base: the most specific handler wins
        NotFound: _on_not_found,
        DuplicateEventConflict: _on_conflict,
        InvalidTransition: _on_conflict,
        ConcurrencyConflict: _on_conflict,
        HTTPException: _on_http,
        Exception: _on_error,
    }
