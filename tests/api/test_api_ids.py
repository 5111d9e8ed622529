"""Bad ids on every route of the app's route table, on SQLite and PostgreSQL: NUL, invalid UTF-8,
very long, non-ASCII ids in the path and in ``cursor`` answer 404 or 422 problem+json, never 500,
and change nothing."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import Api, accounts, assert_problem, runtime_for
from litestar import Litestar
from litestar.testing import TestClient

sys.path.append(
    str(Path(__file__).resolve().parent.parent / "contract")
)  # after tests/api: its conftest wins
from store_backends import migrated_postgres_database

from attribution_webhooks.app.api import create_app
from attribution_webhooks.app.bootstrap import open_runtime
from attribution_webhooks.app.settings import Mode, Settings

#: As they appear in a URL (already percent-encoded where they must be).
BAD_IDS = [
    "wh_a%00b",
    "%00",
    "dlv_%FF%FE",
    "evt_" + "x" * 5000,
    "wh_%C3%BCnicode",
    "%E2%80%AE",
    "a%20b",
    "..",
]
_PARAM = re.compile(r"\{[a-z_]+(?::[a-z]+)?\}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_api(request: pytest.FixtureRequest, migrated_template: Path, tmp_path: Path) -> Iterator[Api]:
    """Alice's view of a service over SQLite, then over PostgreSQL."""
    if request.param == "sqlite":
        runtime = runtime_for(migrated_template, tmp_path, Mode.DEVELOPMENT)
        yield from _serve(runtime)
    else:
        with migrated_postgres_database() as url:
            settings = Settings(database_url=url.render_as_string(hide_password=False), mode=Mode.DEVELOPMENT)
            yield from _serve(open_runtime(settings, migrate=False))


def _serve(runtime: Any) -> Iterator[Api]:
    try:
        with TestClient(create_app(runtime)) as client:
            yield accounts(runtime, client)[0]
    finally:
        runtime.close()


def routes_with_ids(app: Litestar) -> list[tuple[str, str]]:
    """(method, path template) of every API route of the app that takes an id in its path: the
    handlers behind an API key (the dashboard's pages have their own session and sign-in page;
    the docs' pages have no ids)."""
    found = []
    for route in app.routes:
        if not _PARAM.search(route.path):
            continue
        for handler in getattr(route, "route_handlers", ()):
            if "account" not in handler.parsed_fn_signature.parameters:
                continue
            for method in sorted(handler.http_methods):
                if method not in ("HEAD", "OPTIONS"):
                    found.append((method, route.path))
    return found


def test_every_route_answers_a_bad_id_with_404_or_422(backend_api: Api) -> None:
    """Each route with an id, each bad id: 404/422 problem+json, and the log is unchanged."""
    api = backend_api
    api.register()
    routes = routes_with_ids(api.client.app)
    assert len(routes) >= 13  # every /webhooks/{id}…, /deliveries/{id}…, /events/{id}
    before = api.log_size()
    for method, template in routes:
        for bad in BAD_IDS:
            path = _PARAM.sub(bad, template)
            body = {} if method in ("PUT", "PATCH") else None
            response = api.client.request(method, path, headers=api.headers, json=body)
            assert response.status_code in (404, 422), (method, path[:80], response.text)
            assert response.headers["content-type"].startswith("application/problem+json"), path[:80]
    assert api.log_size() == before


def test_every_cursor_refuses_a_bad_cursor_with_422(backend_api: Api) -> None:
    """cursor= with NUL, invalid UTF-8, non-ASCII or 5,000 characters: a 422 naming cursor."""
    api = backend_api
    hook = api.register()
    for path in ("/webhooks", f"/webhooks/{hook['id']}/deliveries"):
        for bad in BAD_IDS:
            response = api.get(f"{path}?cursor={bad}")
            assert_problem(response, 422, "cursor")


def test_good_ids_that_do_not_exist_are_404(backend_api: Api) -> None:
    """The check does not turn away a well-formed unknown id: that is an ordinary 404."""
    api = backend_api
    for path in ("/webhooks/wh_01HZZZZZZZZZZZZZZZZZZZZZZZ", "/deliveries/dlv_x", "/events/evt_nope.1-2"):
        assert_problem(api.get(path), 404)
