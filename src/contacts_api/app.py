"""create_app(settings): the one place the HTTP application is assembled."""

from __future__ import annotations

import gc

from litestar import Litestar, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from contacts_api import __version__
from contacts_api.accounts.key_cache import KeyCache
from contacts_api.accounts.router import list_users
from contacts_api.contacts.bulk_router import create_contacts_bulk
from contacts_api.contacts.create_batch import CreateBatchHandler
from contacts_api.contacts.manage_router import (
    CONTACT_DETAIL,
    CONTACT_MANAGE_ROUTES,
    LIST_CONTACTS,
    detail_from_request,
    list_from_request,
)
from contacts_api.contacts.router import CREATE_CONTACT, create_contact, create_from_request
from contacts_api.contacts.statistics import GrowthAnalyzer
from contacts_api.events.router import list_events
from contacts_api.http.error_handlers import EXCEPTION_HANDLERS
from contacts_api.http.hot_routes import HotRoute, HotRoutes
from contacts_api.http.idempotency import idempotency_middleware
from contacts_api.http.metrics import metrics_endpoint
from contacts_api.http.observability import ObservabilityMiddleware
from contacts_api.http.ops import docs, healthz, openapi_json, readyz
from contacts_api.http.ratelimit import limiter_for
from contacts_api.http.ratelimit.guard import AccountRates, Gate, provide_gated_principal
from contacts_api.http.server_protocol import ServerHttpProtocol
from contacts_api.notes.router import NOTE_ROUTES
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database
from contacts_api.storage.group_commit import GroupCommitter
from contacts_api.webhooks.background import BackgroundDispatcher
from contacts_api.webhooks.outbox import record_contact_changes
from contacts_api.webhooks.router import webhooks_router


def create_app(settings: Settings | None = None) -> Litestar:
    """The ASGI application for these settings (the database is migrated separately)."""
    settings = settings or Settings()
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)

    v1 = Router(
        path="/v1",
        route_handlers=[
            create_contact,
            create_contacts_bulk,
            *CONTACT_MANAGE_ROUTES,
            *NOTE_ROUTES,
            list_events,
            list_users,
            webhooks_router,
        ],
        dependencies={"principal": Provide(provide_gated_principal)},
        middleware=[idempotency_middleware],
        security=[{"BearerAuth": []}],
        tags=["contacts"],
    )

    # PostgreSQL's planner must see the table grow (contacts/statistics.py).
    analyzer = None if db.is_sqlite else GrowthAnalyzer(db)
    create_batch = CreateBatchHandler(
        settings.duplicate_email,
        record_change=record_contact_changes,
        on_created=analyzer.created_contacts if analyzer is not None else None,
    )
    committer = GroupCommitter(db, create_batch, after_batch=create_batch.finished)
    limiter = limiter_for(settings.redis_url, settings.redis_prefix)
    gate = Gate(limiter, AccountRates(db, settings.default_rate), settings.auth_fail_rate)

    async def dispose_database() -> None:
        await committer.stop()
        if analyzer is not None:
            await analyzer.stop()
        await limiter.close()
        await db.dispose()

    dispatcher = BackgroundDispatcher(db, settings)
    startup = [dispatcher.start] if settings.webhooks_dispatch_in_server else []

    app = Litestar(
        route_handlers=[
            v1,
            healthz,
            readyz,
            metrics_endpoint,
            openapi_json,
            docs,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        on_startup=startup,
        on_shutdown=[dispatcher.stop, dispose_database],
        openapi_config=OpenAPIConfig(
            title="contacts-api",
            version=__version__,
            description="A self-hosted server that speaks the iClosed.io V1 contacts API.",
            # Litestar's own copy lives out of the way; /openapi.json serves ours, which adds
            # the request bodies our handlers validate themselves (see http/openapi_docs.py).
            path="/_litestar_schema",
            render_plugins=[JsonRenderPlugin()],
            components=Components(
                security_schemes={
                    "BearerAuth": SecurityScheme(
                        type="http", scheme="bearer", description="iclosed_<token>"
                    )
                }
            ),
        ),
        debug=False,
        logging_config=None,
    )
    app.state.db = db
    app.state.committer = committer
    app.state.analyzer = analyzer
    app.state.key_cache = KeyCache(db, ttl_s=settings.key_cache_seconds)
    app.state.settings = settings
    app.state.openapi_document = None
    app.state.gate = gate
    # Outermost, around Litestar's own handler: app `middleware=` would miss 404s and 405s.
    # The busiest routes skip Litestar's layers (see http/hot_routes.py), not these.
    hot = HotRoutes(
        app.asgi_handler,  # type: ignore[arg-type]
        app,
        [
            HotRoute("POST", "/v1/contacts", CREATE_CONTACT, create_from_request),
            HotRoute("GET", "/v1/contacts", LIST_CONTACTS, list_from_request),
            HotRoute("GET", "/v1/contacts/detail", CONTACT_DETAIL, detail_from_request),
        ],
    )
    app.asgi_handler = ObservabilityMiddleware(hot, access_log=settings.access_log)  # type: ignore[arg-type]
    return app


def create_app_from_env() -> Litestar:
    """Factory for `uvicorn --factory`: settings from the environment (each worker)."""
    from contacts_api.logging import configure_logging

    settings = Settings()
    configure_logging(settings)
    ServerHttpProtocol.read_timeout = settings.read_timeout_seconds
    app = create_app(settings)
    # Everything alive now (modules, the app, its routes and schemas) lives as long as the
    # worker; set aside, the collector's full passes no longer walk it. Measured
    # under wrk (SQLite, two workers, 32 s of healthz/create/detail/list): full passes
    # 5-6 per worker taking up to 92-100 ms each, a stall of every request in flight on that
    # worker, against 7-10 of at most 2.4-2.9 ms with the freeze.
    gc.collect()  # nothing unreachable is frozen for good
    gc.freeze()
    return app
