"""create_app(settings): the one place the HTTP application is assembled."""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from contacts_api import __version__
from contacts_api.accounts.router import list_users
from contacts_api.contacts.manage_router import CONTACT_MANAGE_ROUTES
from contacts_api.contacts.router import create_contact
from contacts_api.events.router import list_events
from contacts_api.http.auth import provide_principal
from contacts_api.http.error_handlers import EXCEPTION_HANDLERS
from contacts_api.http.idempotency import idempotency_middleware
from contacts_api.http.ops import docs, healthz, openapi_json, readyz
from contacts_api.notes.router import NOTE_ROUTES
from contacts_api.settings import Settings
from contacts_api.storage.engine import Database


def create_app(settings: Settings | None = None) -> Litestar:
    """The ASGI application for these settings (the database is migrated separately)."""
    settings = settings or Settings()
    db = Database(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)

    v1 = Router(
        path="/v1",
        route_handlers=[
            create_contact,
            *CONTACT_MANAGE_ROUTES,
            *NOTE_ROUTES,
            list_events,
            list_users,
        ],
        dependencies={"principal": Provide(provide_principal)},
        middleware=[idempotency_middleware],
        security=[{"BearerAuth": []}],
        tags=["contacts"],
    )

    async def dispose_database() -> None:
        await db.dispose()

    app = Litestar(
        route_handlers=[v1, healthz, readyz, openapi_json, docs],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        on_shutdown=[dispose_database],
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
    app.state.settings = settings
    app.state.openapi_document = None
    return app


def create_app_from_env() -> Litestar:
    """Factory for `uvicorn --factory`: settings from the environment (each worker)."""
    from contacts_api.logging import configure_logging

    settings = Settings()
    configure_logging(settings)
    return create_app(settings)
