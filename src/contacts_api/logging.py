"""structlog set-up: JSON lines when stderr is not a terminal, readable console lines when it is."""

from __future__ import annotations

import logging
import sys

import structlog

from contacts_api.settings import Settings


def logs_as_json(settings: Settings) -> bool:
    """Whether stderr gets JSON lines (CONTACTS_API_LOG_FORMAT, else: not a terminal)."""
    return (settings.log_format or ("console" if sys.stderr.isatty() else "json")) == "json"


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library's logging to stderr in one format."""
    on_terminal = sys.stderr.isatty()
    use_json = logs_as_json(settings)
    # The console's tracebacks without each frame's local variables (structlog shows them by
    # default): a request's locals hold its Authorization header and the contact it carried.
    # Colours only on a terminal: `LOG_FORMAT=console 2>server.log` wrote escape codes.
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(
            colors=on_terminal,
            exception_formatter=structlog.dev.RichTracebackFormatter(
                show_locals=False, color_system="truecolor" if on_terminal else None
            ),
        )
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        # filter_by_level first: a message below the level (the access log at WARNING) is
        # dropped before the other processors run (~4 % of a create's CPU otherwise).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if use_json else (lambda _l, _m, e: e),
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # httpx logs each request's full URL at INFO: a webhook's URL may carry a token in its
    # query. aiosqlite logs each statement with its parameters at DEBUG: contacts and keys'
    # hashes. What a delivery did is in the delivery log (GET /v1/webhooks/deliveries).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
