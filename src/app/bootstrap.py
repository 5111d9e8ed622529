"""The composition root: the one place that builds the adapters from the settings and hands them
to the core. The API, the worker and the CLI all start from ``open_runtime``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import define, field

from ..adapters.crypto import Keyring, KeyringError
from ..adapters.http import EgressMode, EgressSettings, HttpTransport, check_target
from ..adapters.http.settings import HttpClient
from ..adapters.signing import HmacSigner
from ..adapters.sql import ApiKeyStore, SqlStore, open_store
from ..adapters.sql.wakeups import PostgresWakeups
from ..adapters.system import SystemClock, SystemRandom, UlidGenerator, id_time
from ..core.endpoint import EndpointRules, validate_url
from ..core.errors import ValidationError
from ..core.retention import RetentionPolicy
from ..core.retry import RetryPolicy
from .observability import Observability
from .services import NoticeBoard, ServiceSettings, WebhookService
from .services.operational import OperationalEvents
from .services.purged import PurgedHistory
from .settings import Mode, Settings, SettingsError
from .worker import Dispatcher, DispatchSettings
from .worker.retention import Retention

if TYPE_CHECKING:  # imported only when tracing is on: the otel extra may not be installed
    from .observability.tracing import OtelTracer

__all__ = ["Runtime", "open_runtime", "secret_keyring"]


@define
class Runtime:
    """The service's parts, built once per process. ``close()`` releases the database."""

    settings: Settings
    store: SqlStore
    keys: ApiKeyStore
    service: WebhookService
    notices: NoticeBoard
    egress: EgressSettings
    dispatch: DispatchSettings
    #: Metrics, the attempt log lines and the worker's heartbeat: every dispatcher's observer.
    observability: Observability = field(factory=Observability)
    #: OpenTelemetry spans (``--tracing on``); None: tracing is off and opentelemetry not imported.
    tracer: OtelTracer | None = None

    def transport(self) -> HttpTransport:
        """A new HTTP transport (a connection pool): one per dispatcher, closed with it."""
        return HttpTransport(self.egress)

    def wakeups(self) -> PostgresWakeups | None:
        """Wake-ups between processes (PostgreSQL's LISTEN/NOTIFY); None on SQLite, which polls."""
        if self.store.engine.dialect.name != "postgresql":
            return None
        return PostgresWakeups(self.store.engine.url)

    def dispatcher(self, transport: HttpTransport) -> Dispatcher:
        """A dispatcher over this runtime's ports, hearing its notices; ``run(stop)`` it on the
        event loop. From now on readiness (``/readyz``) also requires its loop to go round."""
        ports = self.service.ports
        self.observability.worker_started = True
        return Dispatcher(
            store=self.store,
            transport=transport,
            signer=HmacSigner(),
            clock=ports.clock,
            random=ports.random,
            retry=ports.settings.retry,
            endpoint_rules=ports.settings.endpoint_rules,
            settings=self.dispatch,
            notices=self.notices,
            observer=self.observability,
            operational=OperationalEvents.over(ports),
            tracer=self.tracer,
        )

    def retention(self) -> Retention:
        """The retention task over this runtime's store (ADR 0018); ``run(stop)`` it beside a
        dispatcher. It returns at once when the retention age is ``forever``."""
        policy = RetentionPolicy(age=self.settings.retention_age or None)  # zero: forever
        return Retention(self.store, self.service.ports.clock, policy)

    @property
    def purged(self) -> PurgedHistory:
        """Explains an event or delivery that retention removed (410 rather than 404)."""
        return PurgedHistory(
            self.store, self.service.ports.clock, self.settings.retention_age or None, id_time
        )

    async def check_target(self, url: str) -> None:
        """The registration-time check of a webhook URL: its shape, then (production mode) that
        it is https:// and does not point at an internal address. Raises ValidationError."""
        validate_url(url, self.settings.mode is Mode.PRODUCTION)
        await check_target(url, self.egress)

    def close(self) -> None:
        self.store.close()


def _egress(settings: Settings) -> EgressSettings:
    timeout = settings.request_timeout
    return EgressSettings(
        mode=EgressMode(settings.mode.value),
        timeout=timeout,
        connect_timeout=min(EgressSettings().connect_timeout, timeout),
        proxy=settings.egress_proxy,
        source_address=settings.egress_source_address,
        allow_networks=settings.egress_allow_networks,
        client=HttpClient(settings.egress_client),
    )


def _dispatch(settings: Settings) -> DispatchSettings:
    timeout = settings.request_timeout
    return DispatchSettings(
        concurrency=settings.concurrency,
        per_endpoint_concurrency=settings.per_endpoint_concurrency,
        request_timeout=timeout,
        poll_interval=settings.poll_interval,
        shutdown_grace=settings.shutdown_grace,
    )


def secret_keyring(settings: Settings, *, serving: bool = True) -> Keyring | None:
    """The master keys that encrypt webhook secrets; None means the development key kept in the
    database (with a warning), which a process serving in production mode may not use. (The
    database commands take no mode: they use whatever key the database was set up with.)"""
    if settings.secret_keys is not None:
        return Keyring.parse(settings.secret_keys)
    if serving and settings.mode is Mode.PRODUCTION:
        raise SettingsError(
            "production mode needs ATTRIBUTION_WEBHOOKS_SECRET_KEYS, the master key that encrypts webhook "
            "secrets (make one: python3 -c 'import base64,os; "
            "print(base64.urlsafe_b64encode(os.urandom(32)).decode())')"
        )
    return None


def open_runtime(settings: Settings, *, migrate: bool | None = None, serving: bool = True) -> Runtime:
    """Build every part from ``settings`` and open the database (SQLite migrates itself;
    PostgreSQL must have been upgraded with ``db upgrade``). Raises SettingsError for settings
    that cannot work together."""
    try:
        egress = _egress(settings)
        dispatch = _dispatch(settings)
        retry = RetryPolicy(delays=settings.retry_delays)
    except (ValidationError, ValueError) as error:
        raise SettingsError(str(error)) from None
    service_settings = ServiceSettings(
        endpoint_rules=EndpointRules(require_https=settings.mode is Mode.PRODUCTION),
        retry=retry,
    )
    keyring = secret_keyring(settings, serving=serving)
    store = open_store(settings.database_url, migrate=migrate, keyring=keyring)
    if keyring is not None:
        # A new key put first in the keyring takes over every data key at once, so the old one
        # can leave the keyring after one start (ADR 0010). A key missing from it stops us here.
        try:
            store.rewrap_keys()
        except KeyringError as error:
            store.close()
            raise SettingsError(str(error)) from None
    notices = NoticeBoard()
    service = WebhookService(store, SystemClock(), UlidGenerator(), SystemRandom(), service_settings, notices)
    observability = Observability(dispatch.poll_interval)
    keys = ApiKeyStore(store.engine)
    tracer = _tracer(settings) if settings.tracing == "on" else None
    return Runtime(settings, store, keys, service, notices, egress, dispatch, observability, tracer)


def _tracer(settings: Settings) -> OtelTracer:
    """The OpenTelemetry tracer, imported only now (ADR 0012's addendum)."""
    try:
        from .observability.tracing import OtelTracer
    except ImportError as error:
        raise SettingsError(
            f"--tracing on needs OpenTelemetry ({error.name} is missing): "
            "pip install 'attribution-webhooks[otel]'"
        ) from None
    return OtelTracer()
