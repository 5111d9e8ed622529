"""The dashboard over HTTP (Litestar's test client): sessions, CSRF, isolation, escaping, filters."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from dashboard_helpers import User
from litestar.testing import TestClient

from attribution_webhooks.app.api import create_app
from attribution_webhooks.app.bootstrap import Runtime
from attribution_webhooks.app.dashboard.session import session_key
from attribution_webhooks.app.settings import Mode, Settings
from attribution_webhooks.core.samples import SAMPLE_DATA

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'


def _publish(user: User, data: dict[str, Any] | None = None) -> str:
    body = {"type": "deal.attributed", "data": data or dict(SAMPLE_DATA["deal.attributed"])}
    answer = user.api("POST", "/events", body)
    assert answer.status_code == 202, answer.text
    delivery_id: str = answer.json()["deliveryIds"][0]
    return delivery_id


def _dashboard_routes(runtime: Runtime) -> list[tuple[str, str]]:
    routes = []
    for route in create_app(runtime).routes:
        for method in sorted(getattr(route, "methods", ())):
            if (
                route.path.startswith("/dashboard/")
                and "static" not in route.path
                and method in ("GET", "POST")
            ):
                routes.append((method, route.path))
    return routes


def test_pages_send_a_stranger_to_the_sign_in_form(users: tuple[User, User]) -> None:
    """Without a session every page redirects to sign-in (keeping where it was going); htmx gets HX-Redirect."""
    alice, _ = users
    answer = alice.get("/dashboard/deliveries", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard/sign-in?next=/dashboard/deliveries"
    answer = alice.get("/dashboard/deliveries", headers={"HX-Request": "true"}, follow_redirects=False)
    assert answer.headers["HX-Redirect"].startswith("/dashboard/sign-in")
    assert alice.get("/dashboard/webhooks/wh_x", follow_redirects=False).status_code == 303


def test_signing_in_takes_a_valid_key_only(users: tuple[User, User]) -> None:
    """A wrong or empty key is refused with a message; the right one opens a session."""
    alice, _ = users
    form = alice.get("/dashboard/sign-in")
    alice.csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    for key, message in (("aw_wrong", "That is not a valid API key."), ("", "Enter your API key.")):
        answer = alice.post("/dashboard/sign-in", {"api_key": key})
        assert answer.status_code == 401
        assert message in answer.text
    assert alice.get("/dashboard/webhooks", follow_redirects=False).status_code == 303
    alice.sign_in()
    assert alice.get("/dashboard/webhooks").status_code == 200


def test_next_after_sign_in_stays_inside_the_dashboard(users: tuple[User, User]) -> None:
    """``next`` pointing elsewhere (another site, a protocol-relative URL) lands on the webhooks page."""
    alice, _ = users
    for target, landing in (
        ("https://evil.example/", "/dashboard/webhooks"),
        ("//evil.example/dashboard/", "/dashboard/webhooks"),
        ("/dashboard/failures", "/dashboard/failures"),
    ):
        form = alice.get("/dashboard/sign-in")
        alice.csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        answer = alice.post("/dashboard/sign-in", {"api_key": alice.key, "next": target})
        assert answer.headers["location"] == landing


@pytest.mark.parametrize("mode", [Mode.DEVELOPMENT, Mode.PRODUCTION])
def test_the_session_cookie_is_httponly_samesite_and_secure_in_production(
    make_runtime: Callable[[Mode], Runtime], mode: Mode
) -> None:
    """HttpOnly, SameSite=Lax, scoped to /dashboard; Secure in production mode."""
    runtime = make_runtime(mode)
    with TestClient(create_app(runtime)) as client:
        cookie = client.get("/dashboard/sign-in").headers["set-cookie"]
    assert cookie.startswith("aw_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/dashboard" in cookie
    assert ("Secure" in cookie) is (mode is Mode.PRODUCTION)


def test_signing_out_and_revoking_the_key_end_the_session(users: tuple[User, User]) -> None:
    """After sign-out, or once its key is revoked, the session opens no page."""
    alice, bob = users
    alice.sign_in()
    assert alice.post("/dashboard/sign-out").status_code == 303
    assert alice.get("/dashboard/webhooks", follow_redirects=False).status_code == 303
    bob.sign_in()
    assert bob.get("/dashboard/webhooks", follow_redirects=False).status_code == 200
    bob.runtime.keys.revoke(bob.key.split("_")[1], datetime.now(UTC))
    assert bob.get("/dashboard/webhooks", follow_redirects=False).status_code == 303


def test_every_changing_form_needs_the_sessions_csrf_token(users: tuple[User, User]) -> None:
    """Every POST of the dashboard without the token, or with another one, is 403 and changes nothing."""
    alice, _ = users
    alice.sign_in()
    webhook_id = alice.add_webhook()
    delivery_id = _publish(alice)
    before = alice.log_size()
    ids = {"webhook_id": webhook_id, "delivery_id": delivery_id}
    posts = [path for method, path in _dashboard_routes(alice.runtime) if method == "POST"]
    assert len(posts) == 12  # a new form must be walked here too
    for template in posts:
        path = re.sub(r"\{(\w+):\w+\}", lambda m: ids[m.group(1)], template)
        data = {"url": "https://x.example/", "events": ["partner.created"], "since": "2024-01-01T00:00"}
        for token in (None, "forged"):
            form = {**data, **({"csrf_token": token} if token else {})}
            answer = alice.client.post(path, data=form, follow_redirects=False)
            assert answer.status_code == 403, f"{path}: {answer.status_code}"
            assert "Form expired" in answer.text
    assert alice.log_size() == before
    assert alice.get("/dashboard/webhooks", follow_redirects=False).status_code == 200  # still signed in


def test_another_accounts_ids_are_404_on_every_dashboard_page(users: tuple[User, User]) -> None:
    """Bob, signed in, gets 404 on every dashboard route naming Alice's ids, and changes nothing."""
    alice, bob = users
    alice.sign_in()
    bob.sign_in()
    webhook_id = alice.add_webhook()
    delivery_id = _publish(alice)
    ids = {"webhook_id": webhook_id, "delivery_id": delivery_id}
    before = alice.log_size()
    routes = [(m, p) for m, p in _dashboard_routes(alice.runtime) if "{" in p]
    assert len(routes) == 14
    for method, template in routes:
        path = re.sub(r"\{(\w+):\w+\}", lambda m: ids[m.group(1)], template)
        if method == "GET":
            answer = bob.get(path, follow_redirects=False)
        else:
            answer = bob.post(
                path,
                {
                    "url": "https://x.example/",
                    "events": ["partner.created"],
                    "since": "2024-01-01T00:00",
                    "type": "deal.attributed",
                },
            )
        assert answer.status_code == 404, f"{method} {path}: {answer.status_code}"
        assert "Not found" in answer.text
    assert bob.get(f"/dashboard/deliveries?webhook={webhook_id}").status_code == 404
    assert webhook_id not in bob.get("/dashboard/deliveries").text
    assert webhook_id not in bob.get("/dashboard/webhooks").text
    assert alice.log_size() == before


def test_user_supplied_text_is_shown_as_text(users: tuple[User, User]) -> None:
    """Markup in a description, an event's data and a filter value comes back escaped on every page."""
    alice, _ = users
    alice.sign_in()
    webhook_id = alice.add_webhook(description=ATTRIBUTE + SCRIPT)
    data = dict(SAMPLE_DATA["deal.attributed"])
    data["model"] = ATTRIBUTE
    data["attribution"] = [{"partnerId": SCRIPT, "partnerName": ATTRIBUTE, "credit": 1, "percentage": 100}]
    delivery_id = _publish(alice, data)
    pages = {
        "/dashboard/webhooks": "&lt;script&gt;alert(1)&lt;/script&gt;",
        f"/dashboard/webhooks/{webhook_id}": "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;",
        f"/dashboard/deliveries/{delivery_id}": "&lt;script&gt;alert(1)&lt;/script&gt;",
        "/dashboard/deliveries?status=" + SCRIPT: "&lt;script&gt;alert(1)&lt;/script&gt;",
    }
    for path, escaped in pages.items():
        html = alice.get(path).text
        assert escaped in html, path
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path


def test_production_mode_refuses_the_urls_the_api_refuses_with_the_same_message(
    make_runtime: Callable[[Mode], Runtime],
) -> None:
    """http:// and internal addresses: the form shows the API's own problem detail, and nothing is stored."""
    runtime = make_runtime(Mode.PRODUCTION)
    # https: the browser sends a Secure cookie back over https only.
    with TestClient(create_app(runtime), base_url="https://testserver.local") as client:
        alice = User.create(runtime, client, "acct_alice").sign_in()
        for url in ("http://receiver.example/hooks", "https://127.0.0.1/hooks", "https://[::1]/x"):
            api = alice.api("POST", "/webhooks", {"url": url, "events": ["deal.attributed"]})
            assert api.status_code == 422
            form = alice.post("/dashboard/webhooks/new", {"url": url, "events": ["deal.attributed"]})
            assert form.status_code == 422
            detail = api.json()["detail"]
            assert detail.replace('"', "&#34;").replace("'", "&#39;") in form.text, (detail, url)
        assert alice.log_size() == 0


def test_webhook_actions_change_it_through_the_use_cases(users: tuple[User, User]) -> None:
    """Edit, disable, enable, rotate (grace shown), reveal and delete, each reflected by the API."""
    alice, _ = users
    alice.sign_in()
    webhook_id = alice.add_webhook(secret="s3cret-s3cret-given")
    path = f"/dashboard/webhooks/{webhook_id}"
    edited = alice.post(
        path,
        {
            "url": "https://other.example/h",
            "events": ["partner.created", "event.tracked"],
            "standard_webhooks": "on",
        },
    )
    assert edited.status_code == 303
    body = alice.api("GET", f"/webhooks/{webhook_id}").json()
    assert (body["url"], body["events"], body["standardWebhooks"]) == (
        "https://other.example/h",
        ["partner.created", "event.tracked"],
        True,
    )
    assert alice.post(f"{path}/disable").status_code == 303
    assert alice.api("GET", f"/webhooks/{webhook_id}").json()["status"] == "disabled"
    assert "since" in alice.get(path).text
    assert alice.post(f"{path}/enable").status_code == 303
    rotated = alice.post(f"{path}/rotate", {"grace_hours": "2"})
    assert "Rotation grace" in rotated.text
    new_secret = alice.api("GET", f"/webhooks/{webhook_id}/secret").json()["secret"]
    assert new_secret in rotated.text
    assert new_secret != "s3cret-s3cret-given"
    assert new_secret in alice.post(f"{path}/reveal").text
    assert new_secret not in alice.get(path).text  # shown on request only
    assert "whole number" in alice.post(f"{path}/rotate", {"grace_hours": "soon"}).text
    recovered = alice.post(f"{path}/recover", {"since": "2024-01-01T00:00"})
    assert recovered.headers["location"] == f"/dashboard/deliveries?webhook={webhook_id}&recovered=0"
    assert "since" in alice.post(f"{path}/recover", {"since": "last week"}).text
    assert "Delete this webhook?" in alice.get(f"{path}/delete").text
    assert alice.post(f"{path}/delete").status_code == 303
    assert alice.api("GET", f"/webhooks/{webhook_id}").status_code == 404


def test_add_webhook_shows_a_generated_secret_once_and_keeps_the_form_on_errors(
    users: tuple[User, User],
) -> None:
    """A generated whsec_ secret on the created page only; a bad form keeps what was typed."""
    alice, _ = users
    alice.sign_in()
    created = alice.post(
        "/dashboard/webhooks/new", {"url": "https://a.example/h", "events": ["deal.attributed"]}
    )
    secret = re.search(r'value="(whsec_[^"]+)"', created.text).group(1)  # type: ignore[union-attr]
    webhook_id = re.search(r"/dashboard/webhooks/(wh_\w+)", created.text).group(1)  # type: ignore[union-attr]
    assert alice.api("GET", f"/webhooks/{webhook_id}/secret").json()["secret"] == secret
    assert secret not in alice.get("/dashboard/webhooks").text
    refused = alice.post("/dashboard/webhooks/new", {"url": "https://a.example/h", "description": "kept"})
    assert refused.status_code == 422
    assert "events" in refused.text
    assert 'value="kept"' in refused.text


def test_the_log_filters_by_status_type_webhook_and_time_and_pages(users: tuple[User, User]) -> None:
    """Filters narrow the rows; a page holds 50 and links to the older ones; bad filters say why."""
    alice, _ = users
    alice.sign_in()
    first = alice.add_webhook("https://a.example/h")
    second = alice.add_webhook("https://b.example/h")
    ids = [_publish(alice) for _ in range(26)]  # 52 deliveries: two per event

    def rows(query: str) -> list[str]:
        return re.findall(
            r'href="/dashboard/deliveries/(dlv_\w+)"', alice.get(f"/dashboard/deliveries?{query}").text
        )

    page = rows("")
    assert len(page) == 50
    assert ids[-1] in page
    older = re.search(r"cursor=(dlv_\w+)", alice.get("/dashboard/deliveries").text).group(1)  # type: ignore[union-attr]
    assert len(rows(f"cursor={older}")) == 2
    assert len(rows(f"webhook={first}")) == 26
    assert set(rows(f"webhook={second}")).isdisjoint(rows(f"webhook={first}"))
    assert len(rows("status=scheduled&type=deal.attributed")) == 50
    assert rows("status=failed") == []
    assert rows("type=partner.created") == []
    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M")
    assert rows(f"from={later}") == []
    assert len(rows(f"until={later}&webhook={first}")) == 26
    assert "unknown status" in alice.get("/dashboard/deliveries?status=lost").text
    assert (
        "not a valid" in alice.get("/dashboard/deliveries?from=yesterday").text
        or "from" in alice.get("/dashboard/deliveries?from=yesterday").text
    )
    assert alice.get("/dashboard/failures").status_code == 200


def test_docs_and_the_dashboard_use_only_their_own_assets(users: tuple[User, User]) -> None:
    """/docs and the pages load scripts and styles from this server only, and each one is served."""
    alice, _ = users
    alice.sign_in()
    for path in ("/docs", "/dashboard/webhooks"):
        html = alice.get(path).text
        assets = re.findall(r'(?:src|href)=["\']([^"\']+\.(?:js|css|png))["\']', html)
        assert assets, path
        for asset in assets:
            assert asset.startswith("/"), asset
            assert alice.get(asset).status_code == 200, asset
        assert "cdn." not in html


def test_the_session_key_is_made_once_and_kept_or_taken_from_the_settings(tmp_path: Any) -> None:
    """Without --session-secret a key file appears next to the database and is reused; a secret wins."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/a.sqlite3")
    first = session_key(settings)
    assert (tmp_path / "a.sqlite3.session-key").exists()
    assert session_key(settings) == first
    assert len(first) == 32
    configured = Settings(database_url=f"sqlite:///{tmp_path}/a.sqlite3", session_secret="shared by all")
    assert session_key(configured) != first
    assert session_key(configured) == session_key(configured)


def test_a_delivery_removed_by_retention_says_so(users: tuple[User, User]) -> None:
    """A delivery page for an id older than the retention age that is not found answers 410,
    saying that the retention policy removed it (ADR 0018); a recent unknown id stays 404."""
    from attribution_webhooks.adapters.system import _crockford  # the ids' own encoding

    alice, _ = users
    alice.sign_in()

    def ulid_at(when: datetime) -> str:
        return "dlv_" + _crockford((int(when.timestamp() * 1000) << 80) | 7)

    old = alice.get(f"/dashboard/deliveries/{ulid_at(datetime.now(UTC) - timedelta(days=40))}")
    assert old.status_code == 410
    assert "Removed by the retention policy" in old.text
    assert "30 days" in old.text
    recent = alice.get(f"/dashboard/deliveries/{ulid_at(datetime.now(UTC) - timedelta(days=1))}")
    assert recent.status_code == 404


def test_ordered_delivery_is_shown_and_set_on_the_webhook_page(users: tuple[User, User]) -> None:
    """The webhook page says whether deliveries go in order; ticking the box switches it, as the
    API shows, and unticking it switches it back."""
    alice, _ = users
    alice.sign_in()
    webhook_id = alice.add_webhook()
    path = f"/dashboard/webhooks/{webhook_id}"
    assert "Concurrent" in alice.get(path).text
    form = {"url": "https://receiver.example/hooks", "events": ["deal.attributed"], "ordered": "on"}
    assert alice.post(path, form).status_code == 303
    assert alice.api("GET", f"/webhooks/{webhook_id}").json()["ordered"] is True
    page = alice.get(path).text
    assert "Ordered" in page
    assert 'id="ordered" name="ordered" checked' in page
    del form["ordered"]
    assert alice.post(path, form).status_code == 303
    assert alice.api("GET", f"/webhooks/{webhook_id}").json()["ordered"] is False


def test_webhook_page_shows_and_edits_the_flow_policies(users: tuple[User, User]) -> None:
    """The page shows the rate limit and breaker; the edit form sets and clears them; a bad
    number is a 422 with the reason (ADR 0015)."""
    alice, _ = users
    alice.sign_in()
    webhook_id = alice.add_webhook()
    path = f"/dashboard/webhooks/{webhook_id}"
    assert "No rate limit" in alice.get(path).text
    current = alice.api("GET", f"/webhooks/{webhook_id}").json()
    form = {"url": current["url"], "events": current["events"]}
    edited = alice.post(
        path, {**form, "rate_limit": "7", "rate_limit_burst": "2", "circuit_breaker_threshold": "4"}
    )
    assert edited.status_code == 303
    body = alice.api("GET", f"/webhooks/{webhook_id}").json()
    assert (body["rateLimit"], body["rateLimitBurst"], body["circuitBreakerThreshold"]) == (7, 2, 4)
    page = alice.get(path).text
    assert "At most 7 per second" in page
    assert "circuit breaker after 4 failures in a row" in page
    assert alice.post(path, {**form, "rate_limit": "", "circuit_breaker_threshold": ""}).status_code == 303
    body = alice.api("GET", f"/webhooks/{webhook_id}").json()
    assert (body["rateLimit"], body["circuitBreakerThreshold"]) == (None, None)
    bad = alice.post(path, {**form, "rate_limit": "fast"})
    assert bad.status_code == 422
    assert "whole number" in bad.text
