"""``groundwire serve``: the HTTP service and the reviewer page (``pip install 'groundwire[server]'``).

A client of the same :class:`~groundwire.Grounder` as the Python API: every request is authenticated
(OIDC bearer JWTs validated against the issuer's JWKS, or a hashed static API key bound to a tenant), the
verified identity becomes a :class:`~groundwire.UserContext`, and the Grounder's own access, feature,
screening, review and audit paths decide everything else. No second permission model lives here.
"""

from __future__ import annotations

from .settings import ServerSettings, load_server_settings

__all__ = ["ServerSettings", "load_server_settings"]
