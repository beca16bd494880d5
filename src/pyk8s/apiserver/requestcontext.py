"""Who the request being served comes from, for code below the HTTP layer (the registry's
admission steps) that needs it: a context variable the server sets once per request after
authentication. Work started outside a request (controllers, watches of the server's own
graph) sees None, so identity-dependent admission never applies to it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

current_user: ContextVar[Any] = ContextVar("pyk8s_request_user", default=None)


def request_user() -> Any:
    """The user the request acts as: the authorizer's (authz.CURRENT_USER, after
    impersonation) when there is one, else the authenticated user."""
    try:
        from pyk8s.apiserver.authz import CURRENT_USER
    except ImportError:
        return current_user.get()
    return CURRENT_USER.get() or current_user.get()
