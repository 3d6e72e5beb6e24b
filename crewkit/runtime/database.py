"""Which database holds the state: SQLite under CREWKIT_HOME (the default) or the PostgreSQL
database whose URL is in the variable `config/operations.yaml`'s `database.url_env` names
(CREWKIT_DATABASE_URL unless changed). Light on purpose: `crewkit.settings` tells it the
variable's name without importing the engine.
"""

from __future__ import annotations

import os

from crewkit.errors import StateStoreError

URL_ENV = "CREWKIT_DATABASE_URL"  # the default of operations.yaml's `database.url_env`
SCHEMES = ("postgresql", "postgres")
_url_env = URL_ENV


def use_url_env(name: str) -> None:
    """Read the database URL from variable `name` from now on (settings: `database.url_env`)."""
    global _url_env
    _url_env = name or URL_ENV
    from crewkit.redact import register_env

    register_env(_url_env)  # the URL holds a password: its value is masked wherever it shows


def url_env() -> str:
    """The name of the variable holding the database URL."""
    return _url_env


def is_postgres_url(url: str) -> bool:
    """`postgresql://`, `postgres://` or SQLAlchemy's `postgresql+psycopg://`."""
    return "://" in url and url.split("://", 1)[0].split("+", 1)[0].lower() in SCHEMES


def database_url() -> str | None:
    """The PostgreSQL URL the state lives in, or None for SQLite under CREWKIT_HOME.

    A value that is not a PostgreSQL URL is a StateStoreError naming the variable (and not
    the value, which may hold a password)."""
    value = (os.environ.get(_url_env) or "").strip()
    if not value:
        return None
    if not is_postgres_url(value):
        scheme = f"scheme '{value.split('://', 1)[0]}'" if "://" in value else "no scheme"
        raise StateStoreError(
            f"{_url_env}: not a PostgreSQL URL ({scheme}); set it to "
            "postgresql://USER:PASSWORD@HOST:5432/DATABASE, or unset it to keep the state in "
            "SQLite under CREWKIT_HOME"
        )
    return value
