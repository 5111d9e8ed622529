"""OpenTelemetry traces (the ``otel`` extra; ADR 0012's addendum): a span per attempt with the
W3C ``traceparent`` sent to a real local receiver, in the event's trace with its publish span;
nothing of OpenTelemetry imported while tracing is off."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from attribution_webhooks.adapters.http import EgressMode, EgressSettings, HttpTransport
from attribution_webhooks.adapters.memory import MemoryStore
from attribution_webhooks.adapters.signing import HmacSigner
from attribution_webhooks.adapters.system import SystemClock, SystemRandom, UlidGenerator
from attribution_webhooks.app.observability.tracing import OtelTracer, event_root, trace_id_of
from attribution_webhooks.app.services import NewEvent, ServiceSettings, WebhookService
from attribution_webhooks.app.worker import Dispatcher, DispatchSettings
from attribution_webhooks.core.endpoint import EndpointRules
from attribution_webhooks.core.retry import RetryPolicy
from attribution_webhooks.core.samples import SAMPLE_DATA

ACCOUNT = "acct_1"


class Receiver:
    """A local receiver: 500 to the first request, 200 to the rest; it keeps every request's headers."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.got_two = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(500 if len(receiver.headers) == 1 else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if len(receiver.headers) >= 2:
                    receiver.got_two.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def test_each_attempt_is_a_span_whose_traceparent_the_receiver_gets(receiver: Receiver) -> None:
    """A failed attempt and its retry: two attempt spans in the event's trace, children of and
    linked to the event's root (as the publish span is), with the delivery's ids, the attempt
    number, the status or error class and the latency; each request carried its own span's
    ``traceparent``."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = OtelTracer(provider)
    published = asyncio.run(_deliver(receiver, tracer))
    endpoint_id, event_id, delivery_id = published
    spans = exporter.get_finished_spans()
    attempts = sorted(
        (s for s in spans if s.name == "webhook.attempt"), key=lambda s: s.attributes["webhook.attempt"]
    )
    [publish] = [s for s in spans if s.name == "webhook.publish"]
    root = event_root(ACCOUNT, event_id)
    assert len(attempts) == 2
    assert publish.context.trace_id == trace_id_of(ACCOUNT, event_id)
    assert publish.parent is not None
    assert publish.parent.span_id == root.span_id
    for number, (span, headers) in enumerate(zip(attempts, receiver.headers, strict=True), start=1):
        assert span.attributes["webhook.attempt"] == number
        assert span.attributes["webhook.delivery_id"] == delivery_id
        assert span.attributes["webhook.event_id"] == event_id
        assert span.attributes["webhook.endpoint_id"] == endpoint_id
        assert span.attributes["webhook.latency_ms"] >= 0
        assert span.context.trace_id == root.trace_id
        assert span.parent is not None
        assert span.parent.span_id == root.span_id
        assert [link.context.span_id for link in span.links] == [root.span_id]
        version, trace_hex, span_hex, flags = headers["traceparent"].split("-")
        assert (version, flags) == ("00", "01")
        assert int(trace_hex, 16) == span.context.trace_id
        assert int(span_hex, 16) == span.context.span_id
        assert headers["x-attribution-attempt"] == str(number)
    assert attempts[0].attributes["http.response.status_code"] == 500
    assert attempts[0].attributes["error.type"] == "http_5xx"
    assert not attempts[0].status.is_ok
    assert attempts[1].attributes["http.response.status_code"] == 200
    assert "error.type" not in attempts[1].attributes
    assert attempts[1].status.is_ok


async def _deliver(receiver: Receiver, tracer: OtelTracer) -> tuple[str, str, str]:
    store = MemoryStore()
    # A 10 ms first retry, so that the test does not wait a minute.
    retry = attrs.evolve(RetryPolicy(), delays=(timedelta(milliseconds=10),))
    settings = ServiceSettings(endpoint_rules=EndpointRules(require_https=False), retry=retry)
    service = WebhookService(store, SystemClock(), UlidGenerator(), SystemRandom(), settings)
    view = await service.register_endpoint(ACCOUNT, receiver.url, ["deal.attributed"])
    async with HttpTransport(EgressSettings(mode=EgressMode.DEVELOPMENT)) as transport:
        dispatcher = Dispatcher.beside(service, transport, HmacSigner(), DispatchSettings())
        dispatcher.tracer = tracer
        stop = asyncio.Event()
        running = asyncio.ensure_future(dispatcher.run(stop))
        result = await service.publish(
            ACCOUNT, NewEvent("deal.attributed", dict(SAMPLE_DATA["deal.attributed"]))
        )
        tracer.published(ACCOUNT, result.event_id, "deal.attributed", result.delivery_ids)
        while not receiver.got_two.is_set():
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # the second outcome recorded
        stop.set()
        await running
    return view.endpoint.endpoint_id, result.event_id, result.delivery_ids[0]


def test_tracing_off_imports_no_opentelemetry(tmp_path: Any) -> None:
    """A runtime with tracing off (the default) never imports opentelemetry; with it on, it does."""
    script = (
        "import sys\n"
        "from attribution_webhooks.app.bootstrap import open_runtime\n"
        "from attribution_webhooks.app.settings import Mode, Settings\n"
        f"settings = Settings(database_url='sqlite:///{tmp_path}/t.sqlite3', mode=Mode.DEVELOPMENT, tracing=sys.argv[1])\n"
        "runtime = open_runtime(settings)\n"
        "print(runtime.tracer is not None, any(m.startswith('opentelemetry') for m in sys.modules))\n"
        "runtime.close()\n"
    )
    off = subprocess.run([sys.executable, "-c", script, "off"], capture_output=True, text=True, check=True)
    assert off.stdout.split() == ["False", "False"]
    on = subprocess.run([sys.executable, "-c", script, "on"], capture_output=True, text=True, check=True)
    assert on.stdout.split() == ["True", "True"]


def test_tracing_on_without_the_extra_is_a_one_line_settings_error(tmp_path: Any) -> None:
    """Without OpenTelemetry installed, --tracing on fails at start saying what to install."""
    script = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if the extra were not installed\n"
        "from attribution_webhooks.app.bootstrap import open_runtime\n"
        "from attribution_webhooks.app.settings import Mode, Settings, SettingsError\n"
        f"settings = Settings(database_url='sqlite:///{tmp_path}/t.sqlite3', mode=Mode.DEVELOPMENT, tracing='on')\n"
        "try:\n"
        "    open_runtime(settings)\n"
        "except SettingsError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "pip install 'attribution-webhooks[otel]'" in result.stdout
