"""Map Graph ``permission`` resources of a driveItem to Groundwire principals.

The mapping (fail closed: what is not understood grants nobody):

- ``grantedToV2`` / ``grantedToIdentitiesV2`` (sharePointIdentitySet; the deprecated ``grantedTo`` /
  ``grantedToIdentities`` are read when the V2 fields are absent):
  - ``user``: ``user:<email or UPN>`` and ``user:<Entra object id>``, every identifier Graph gives, so an
    app may sign users in by UPN or by object id;
  - ``group``: ``group:<Entra group id>``. Group ids are matched against the groups the app asserts for
    the user at query time (``UserContext.groups``), so nested membership is whatever the app's token
    says (Entra ``groups`` claim with transitive membership); no group is expanded at sync time;
  - ``siteUser``: decoded from its SharePoint claim ``loginName``: ``i:0#.f|membership|<upn>`` ->
    ``user:<upn>``; ``c:0o.c|federateddirectoryclaimprovider|<id>`` and ``c:0t.c|tenant|<id>`` ->
    ``group:<id>``; ``...|<id>_o`` (the group's owners, for whom no principal exists) -> nothing (logged);
    the tenant-wide claims, whole (``c:0-.f|rolemanager|spo-grid-all-users/<tenant id>``,
    ``c:0(.s|true``) -> ``everyone``; a claim that merely contains such text (a guest's login name holds
    their e-mail address) is the user it names;
  - ``siteGroup`` (a SharePoint group, unique only inside its site): the principals configured for it in
    ``site_groups`` (by display name or ``<site id>/<group id>``), else nothing (logged);
  - ``application`` / ``device``: nothing (not people).
- ``link`` facet, by ``scope``: ``users`` -> the identities in ``grantedToIdentitiesV2``;
  ``organization`` -> ``everyone`` only with ``organization_links_grant_everyone``; ``anonymous`` ->
  ``everyone`` only with ``anonymous_links_grant_everyone``; ``existingAccess`` -> nothing (it grants no
  one new); otherwise the listed identities only.
- Expired permissions (``expirationDateTime`` in the past, or not a readable time) grant nobody.

``everyone`` is the tenant-wide token: the index is per tenant, so it never crosses tenants.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from groundwire import EVERYONE, AccessControl
from groundwire.models import normalize_principal

from .settings import SharePointSettings

__all__ = ["acl_from_permissions", "principals_of_identity_set"]

log = logging.getLogger("groundwire.connector.sharepoint.permissions")

# SharePoint's tenant-wide claims, whole: "Everyone" and "Everyone except external users" (the latter
# ends in "/<tenant id>"). Matched as whole claims, never as a substring: a guest's login name holds
# their e-mail address (``i:0#.f|membership|mallory_spo-grid-all-users.example#ext#@...``).
_TENANT_WIDE_CLAIMS = frozenset({"c:0(.s|true", "c:0-.f|rolemanager|everyone"})
_TENANT_WIDE_PREFIX = "c:0-.f|rolemanager|spo-grid-all-users/"


def _principal(kind: str, ident: Any) -> str | None:
    if not isinstance(ident, str) or not ident.strip():
        return None
    try:
        return normalize_principal(f"{kind}:{ident}")
    except ValueError:
        return None


def _from_login_name(login: str) -> set[str]:
    low = login.strip().casefold()
    tenant_id = low[len(_TENANT_WIDE_PREFIX) :] if low.startswith(_TENANT_WIDE_PREFIX) else None
    if low in _TENANT_WIDE_CLAIMS or (tenant_id and "|" not in tenant_id):
        return {EVERYONE}
    parts = login.split("|")
    if low.startswith("i:0#.f|membership|") and len(parts) == 3:
        p = _principal("user", parts[-1])
        return {p} if p else set()
    group_claim = low.startswith(("c:0o.c|federateddirectoryclaimprovider|", "c:0t.c|tenant|"))
    if group_claim and len(parts) == 3:
        gid = parts[-1]
        if gid.casefold().endswith("_o"):
            # "<group>_o" is the group's *owners*: no principal stands for them (a user's groups claim
            # lists memberships), and the group's id would grant every member: it grants nobody
            log.info("owners claim %r grants nobody: Groundwire has no principal for a group's owners", login)
            return set()
        p = _principal("group", gid)
        return {p} if p else set()
    return set()


def principals_of_identity_set(ids: Mapping[str, Any], settings: SharePointSettings, site_id: str = "") -> set[str]:
    """Principals for one (sharePoint)identitySet."""
    out: set[str] = set()
    user = ids.get("user")
    if isinstance(user, dict):
        for key in ("email", "userPrincipalName", "id"):
            p = _principal("user", user.get(key))
            if p:
                out.add(p)
    group = ids.get("group")
    if isinstance(group, dict):
        p = _principal("group", group.get("id"))
        if p:
            out.add(p)
    site_user = ids.get("siteUser")
    if isinstance(site_user, dict) and isinstance(site_user.get("loginName"), str):
        out |= _from_login_name(site_user["loginName"])
    site_group = ids.get("siteGroup")
    if isinstance(site_group, dict):
        keys = [f"{site_id}/{site_group.get('id')}", str(site_group.get("displayName") or "")]
        found = [settings.site_groups[k] for k in keys if k in settings.site_groups]
        if found:
            out.update(found[0])
        else:
            log.info(
                "SharePoint group %r of site %s is not mapped in site_groups; it grants nobody",
                site_group.get("displayName") or site_group.get("id"),
                site_id,
            )
    return out


def _expired(perm: Mapping[str, Any], now: datetime) -> bool:
    """Whether ``perm`` has run out. No ``expirationDateTime`` (or Graph's ``0001-01-01`` for "never")
    does not expire; one that is not an ISO 8601 time counts as expired (fail closed)."""
    raw = perm.get("expirationDateTime")
    if raw is None or (isinstance(raw, str) and raw.startswith("0001-01-01")):
        return False
    if not isinstance(raw, str):
        return True
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        log.info("permission %s has an unreadable expirationDateTime %r: it grants nobody", perm.get("id"), raw)
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when <= now


def _identity_sets(perm: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    single = perm.get("grantedToV2") or perm.get("grantedTo")
    if isinstance(single, dict):
        yield single
    many = perm.get("grantedToIdentitiesV2") or perm.get("grantedToIdentities") or []
    if isinstance(many, list):
        yield from (i for i in many if isinstance(i, dict))


def acl_from_permissions(
    permissions: Iterable[Mapping[str, Any]],
    settings: SharePointSettings,
    site_id: str = "",
    now: datetime | None = None,
) -> AccessControl:
    """The read ACL of an item from its ``/permissions`` collection (see the module docstring)."""
    now = now or datetime.now(UTC)
    allow: set[str] = set()
    for perm in permissions:
        if not isinstance(perm, dict) or _expired(perm, now):
            continue
        link = perm.get("link")
        if isinstance(link, dict):
            scope = str(link.get("scope") or "").casefold()
            if scope == "organization":
                if settings.organization_links_grant_everyone:
                    allow.add(EVERYONE)
                continue
            if scope == "anonymous":
                if settings.anonymous_links_grant_everyone:
                    allow.add(EVERYONE)
                continue
            if scope == "existingaccess":
                continue
        for ids in _identity_sets(perm):
            allow |= principals_of_identity_set(ids, settings, site_id)
    return AccessControl.of(allow)
