"""Typed access to what create_app() puts on the application state."""

from __future__ import annotations

from typing import Any

from litestar import Request

from contacts_api.settings import Settings
from contacts_api.storage.engine import Database


def app_db(request: Request[Any, Any, Any]) -> Database:
    """The application's database."""
    db: Database = request.app.state.db
    return db


def app_settings(request: Request[Any, Any, Any]) -> Settings:
    """The settings the application was built with."""
    settings: Settings = request.app.state.settings
    return settings
