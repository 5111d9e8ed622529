"""The baseline: what a Python team would build instead of this service.

A Celery task that signs the body and POSTs it with a keep-alive ``requests.Session``, retrying
with exponential backoff (``autoretry_for`` + ``retry_backoff``), results ignored, on a Redis
broker, run by a prefork worker of 2 processes. It is not durable in our sense: a task is
acknowledged when a worker receives it (Celery's default), so a worker killed mid-request loses
it, and nothing records attempts.

The harness enqueues the same events our engine delivers (the same 1 KB bodies and signature
header), then starts the worker (``celery -A bench.celery_baseline worker``) and times it at the
receiver. The broker and the queue come from ``BENCH_CELERY_BROKER`` and ``BENCH_CELERY_QUEUE``
(a queue of the run's own, deleted afterwards).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Any

import requests
from celery import Celery

__all__ = ["DeliveryFailed", "app", "deliver", "enqueue", "worker_argv"]

app = Celery("bench_webhooks")
app.conf.update(
    broker_url=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/15"),
    task_default_queue=os.environ.get("BENCH_CELERY_QUEUE", "bench-webhooks"),
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_enable_remote_control=False,  # no pidbox queue left in the broker
)


class DeliveryFailed(Exception):
    """The receiver answered with a status outside 2xx: retry, like a transport error."""


_session: requests.Session | None = None


def _keep_alive_session() -> requests.Session:
    global _session  # one per worker process (prefork children each make theirs)
    if _session is None:
        _session = requests.Session()
    return _session


@app.task(
    autoretry_for=(requests.RequestException, DeliveryFailed),
    retry_backoff=True,
    max_retries=8,
    ignore_result=True,
)
def deliver(url: str, secret: str, event_id: str, event_type: str, delivery_id: str, body: str) -> None:
    """Sign ``body`` and POST it to ``url``; a failure retries with exponential backoff."""
    payload = body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "celery-baseline/1.0",
        "X-Attribution-Signature": hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest(),
        "X-Attribution-Event-Id": event_id,
        "X-Attribution-Event-Type": event_type,
        "X-Attribution-Delivery-Id": delivery_id,
        "X-Attribution-Timestamp": str(int(time.time())),
    }
    response = _keep_alive_session().post(url, data=payload, headers=headers, timeout=15)
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"{response.status_code} from {url}")


def enqueue(broker: str, queue: str, tasks: list[dict[str, Any]]) -> float:
    """Put ``tasks`` (keyword arguments of ``deliver``) on ``queue``; returns the seconds it took."""
    app.conf.update(broker_url=broker, task_default_queue=queue)
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for kwargs in tasks:
            deliver.apply_async(kwargs=kwargs, queue=queue, producer=producer)
    return time.perf_counter() - started


def worker_argv(executable: str, processes: int = 2) -> list[str]:
    """The Celery worker's command line: the prefork pool with ``processes`` children."""
    return [
        executable,
        "-m",
        "celery",
        "-A",
        "bench.celery_baseline",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(processes),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
