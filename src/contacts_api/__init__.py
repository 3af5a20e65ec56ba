"""contacts-api: a self-hosted server that speaks the iClosed.io V1 contacts API."""

__version__ = "0.1.0"
