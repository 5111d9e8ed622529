"""The guide's dashboard steps, literally, in Chromium against a real ``serve``.

Sign in; Settings → Webhooks → Add Webhook → URL → select events → Create; select the webhook →
Send Test Event → choose event type → Send, and see it succeed; stop the receiver, publish, watch
the delivery retry and fail in the log; start the receiver again, Retry, see it succeed. Another
account cannot see any of it. A screenshot of each page is taken on the way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import httpx
from dashboard_helpers import Receiver, Service, sign_in

HOSTILE_NAME = "<script>window.__xss=1</script>"
HOSTILE_MODEL = '"><img src=x onerror="window.__xss=3">'
TIMEOUT = 15_000  # ms: every wait below is for something due within a few seconds


def _page(chromium: Any) -> tuple[Any, Any, list[str]]:
    context = chromium.new_context(viewport={"width": 1180, "height": 760})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    problems: list[str] = []  # dialogs opened by script, and requests that left this machine
    page.on("dialog", lambda dialog: (problems.append(dialog.message), dialog.dismiss()))
    page.on("request", lambda r: None if r.url.startswith("http://127.0.0.1") else problems.append(r.url))
    return context, page, problems


def _no_script_ran(page: Any) -> None:
    assert page.evaluate("window.__xss") is None


def test_the_guides_dashboard_steps_work_in_a_browser(
    chromium: Any, service: Service, receiver: Receiver, shots: Path
) -> None:
    """Sign in, add a webhook, send a test event, watch retries while the receiver is down, retry
    by hand once it is up: each step works, and nothing user-supplied runs as script."""
    context, page, problems = _page(chromium)

    page.goto(f"{service.url}/dashboard/")
    page.wait_for_url("**/dashboard/sign-in**")
    page.screenshot(path=shots / "01-sign-in.png")
    sign_in(page, service, service.key)

    # Settings → Webhooks → Add Webhook → URL → select events → Create
    page.get_by_role("link", name="Add Webhook").click()
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label(re.compile(r"^deal\.attributed")).check()
    page.get_by_label(re.compile(r"^partner\.created")).check()
    page.get_by_label("Description").fill(HOSTILE_MODEL)
    page.screenshot(path=shots / "02-add-webhook.png", full_page=True)
    page.get_by_role("button", name="Create").click()
    secret = page.locator("#secret-value").input_value()
    assert secret.startswith("whsec_")
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    page.screenshot(path=shots / "03-webhook-created.png")

    # Select your webhook → Send Test Event → choose event type → Send
    page.get_by_role("link", name="Open the webhook").click()
    webhook_url = page.url
    page.get_by_role("link", name="Send Test Event").first.click()
    page.get_by_label("Event type").select_option("partner.created")
    page.locator("#sample[data-type='partner.created']").wait_for()  # htmx swapped the sample in
    assert "Acme Corp" in page.locator("#sample").inner_text()
    page.get_by_role("button", name="Send").click()
    result = page.locator("#test-result")
    result.locator(".status-succeeded").wait_for()  # polled in, no reload by hand
    assert "HTTP 200" in result.inner_text()
    page.screenshot(path=shots / "04-send-test-event.png", full_page=True)
    sent = receiver.requests[-1]
    expected = hmac.new(secret.encode(), sent.body, hashlib.sha256).hexdigest()
    assert sent.headers["X-Attribution-Signature"] == expected
    assert json.loads(sent.body)["type"] == "partner.created"

    # The receiver goes down; an event is published; the log shows it retrying, then failed.
    receiver.stop()
    data = {
        "dealId": "deal_xss",
        "amount": 100,
        "closedAt": "2024-01-20T15:00:00Z",
        "model": HOSTILE_MODEL,
        "attribution": [{"partnerId": "p_1", "partnerName": HOSTILE_NAME, "credit": 100, "percentage": 100}],
    }
    published = httpx.post(
        f"{service.url}/events",
        headers={"X-API-Key": service.key},
        json={"type": "deal.attributed", "data": data},
        timeout=10,
    )
    assert published.status_code == 202, published.text
    delivery_id = published.json()["deliveryIds"][0]
    page.get_by_role("link", name="Delivery log").first.click()
    row = page.locator("tr", has=page.locator(f"a:text-is('{delivery_id}')"))
    # The log page polls (no reload by hand): retrying after the first refusal, failed after the
    # retries 2 s and 4 s later (a loaded machine may show the page only once it has failed).
    row.locator(".status-retrying, .status-failed").wait_for()
    assert "connection_refused" in row.inner_text()
    page.screenshot(path=shots / "05-delivery-log.png")
    row.locator(".status-failed").wait_for()
    assert row.locator("td").nth(4).inner_text() == "3"  # attempts
    page.get_by_role("link", name="Failures").click()
    page.locator(f"a:text-is('{delivery_id}')").wait_for()
    page.screenshot(path=shots / "06-failures.png")

    # The delivery's page: every attempt, the headers sent, the event body as text.
    page.locator(f"a:text-is('{delivery_id}')").click()
    attempts = page.locator("ol.attempts > li")
    assert attempts.count() == 3
    assert "connection_refused" in attempts.first.inner_text()
    body = page.locator("#event-body").inner_text()
    assert HOSTILE_NAME in body
    assert HOSTILE_MODEL.replace('"', '\\"') in body
    page.screenshot(path=shots / "07-delivery.png")

    # The receiver is back; Retry by hand; the page follows the new attempt to success.
    receiver.start()
    page.get_by_role("button", name="Retry").click()
    page.locator("#delivery-live dl.facts .status-succeeded").wait_for()
    newest = attempts.first
    assert "HTTP 200" in newest.inner_text()
    newest.locator("summary", has_text="Request headers sent").click()
    headers = newest.locator("table.headers").inner_text()
    assert receiver.requests[-1].headers["X-Attribution-Signature"] in headers
    assert 'onerror="window.__xss=2"' in (newest.locator("pre.answer").text_content() or "")

    # Settings → Webhooks: status and 24 h health; the webhook's own page.
    page.get_by_role("link", name="Settings → Webhooks").click()
    assert "%" in page.locator("table.list tbody tr").first.inner_text()
    page.screenshot(path=shots / "08-webhooks.png")
    page.goto(webhook_url)
    page.get_by_role("button", name="Reveal secret").click()
    assert page.locator("#secret-value").input_value() == secret
    page.screenshot(path=shots / "09-webhook.png")
    _no_script_ran(page)
    delivery_url = f"{service.url}/dashboard/deliveries/{delivery_id}"

    # Sign out; another account signs in and sees none of it.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/dashboard/sign-in")
    sign_in(page, service, service.other_key)
    assert page.locator("table.list").count() == 0
    for url in (webhook_url, delivery_url, f"{webhook_url}/test"):
        response = page.goto(url)
        assert response is not None
        assert response.status == 404, url
    _no_script_ran(page)
    assert problems == []
    context.close()


def test_the_docs_page_renders_offline(chromium: Any, service: Service) -> None:
    """/docs draws Swagger UI from the vendored files: no request leaves this machine."""
    context, page, problems = _page(chromium)
    page.goto(f"{service.url}/docs")
    page.get_by_text("Attribution API webhooks").first.wait_for()
    page.locator(".opblock-tag", has_text="webhooks").first.wait_for()
    assert problems == []
    context.close()


def test_the_core_actions_work_without_javascript(
    chromium: Any, service: Service, receiver: Receiver
) -> None:
    """With scripts off: sign in, add a webhook, send a test event, and see its result on reload."""
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    sign_in(page, service, service.key)
    page.get_by_role("link", name="Add Webhook").click()
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label(re.compile(r"^event\.tracked")).check()
    page.get_by_role("button", name="Create").click()
    page.get_by_role("link", name="Send Test Event").click()
    page.get_by_role("button", name="Send").click()
    for _ in range(50):
        if page.locator("#test-result .status-succeeded").count():
            break
        page.wait_for_timeout(200)
        page.reload()
    assert "HTTP 200" in page.locator("#test-result").inner_text()
    assert json.loads(receiver.requests[-1].body)["type"] == "event.tracked"
    context.close()


def test_the_banner_shows_a_disabled_webhook_and_links_to_it(chromium: Any, service: Service) -> None:
    """A webhook disabled through the API appears in the banner htmx loads on every page; its link
    opens Settings → Webhooks."""
    headers = {"X-API-Key": service.key}
    made = httpx.post(
        f"{service.url}/webhooks",
        json={"url": "http://127.0.0.1:9/banner", "events": ["webhook.disabled"]},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    assert (
        httpx.post(f"{service.url}/webhooks/{made.json()['id']}/disable", headers=headers).status_code == 200
    )
    context, page, problems = _page(chromium)
    sign_in(page, service, service.key)
    page.goto(f"{service.url}/dashboard/deliveries")
    banner = page.locator("#banner .attention")
    banner.wait_for()
    assert re.search(r"\d+ (webhooks? )?disabled", banner.inner_text())
    banner.get_by_role("link", name=re.compile("disabled")).click()
    page.wait_for_url("**/dashboard/webhooks")
    assert problems == []
    context.close()
