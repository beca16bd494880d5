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
    """The request's user: ours, else the one the authorizer recorded (authz.CURRENT_USER)."""
    user = current_user.get()
    if user is not None:
        return user
    try:
        from pyk8s.apiserver.authz import CURRENT_USER
    except ImportError:
        return None
    return CURRENT_USER.get()
