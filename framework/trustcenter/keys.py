"""Rows about keys and encryption: who can read the keys, and whether the stored data is encrypted.

Invariants: the at-rest row passes only when encryption is enabled, the codec round-trips a probe and every
payload store actually holds ciphertext (data written before encryption was turned on fails the row, naming
the store); vectors, ids and ACL principals are in clear by design and are not counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Check, run

if TYPE_CHECKING:
    from ..pipeline import Grounder

__all__ = ["AT_REST", "KEY_ACCESS", "at_rest", "key_access"]

KEY_ACCESS = "restricts access to encryption keys"
AT_REST = "data encryption at rest"
_SAMPLE = 1000  # chunks per tenant read by the at-rest row


def key_access(g: Grounder) -> Check:
    c = g.config
    enc = c.encryption

    def config() -> str:
        where = f", path={enc.options.get('path', '')}" if enc.provider == "file" else ""
        return f"enabled={enc.enabled}, provider={enc.provider}{where}"

    def check() -> tuple[bool, str]:
        from ..keyfile import key_file_problem

        if not enc.enabled:
            return False, "encryption is off: there are no keys to protect and the data is in clear"
        if enc.provider == "file":
            path = c.resolve(str(enc.options.get("path", "")))
            problem = key_file_problem(path)
            if problem:
                return False, problem
            if path.is_relative_to(c.data_path):
                return False, f"the key file {path} lies inside data_dir: a copy of the data carries its key"
            where = f"key file {path}: owner-only (0600), outside data_dir"
        elif enc.provider == "env":
            var = str(enc.options.get("variable", "GROUNDWIRE_KEYS"))
            where = f"keys from the environment variable {var} (never written under data_dir)"
        else:
            where = f"key provider plugin {enc.provider!r} holds the keys"
        ring = g.codec.keyring  # the provider must load: a refused key file fails here
        return True, f"{where}; {len(ring.keys)} key(s) loaded, current {ring.current!r}"

    return run(KEY_ACCESS, config, check)


def at_rest(g: Grounder) -> Check:
    c = g.config

    def check() -> tuple[bool, str]:
        from ..inventory import audit_payloads, collection_payloads, sqlite_payloads
        from ..trust import audit_paths

        if not c.encryption.enabled:
            return False, "disabled: chunk text, audit lines, drafts and quarantine entries are stored in clear"
        codec = g.codec
        if codec.name != "aes-gcm" or codec.decode(codec.encode("probe", "self-check"), "self-check") != "probe":
            return False, f"the codec {codec.name!r} does not round-trip AES-GCM"
        counts: dict[str, list[int]] = {}

        def add(store: str, enc: int, total: int) -> None:
            got = counts.setdefault(store, [0, 0])
            got[0] += enc
            got[1] += total

        names = {str(col.name) for col in g.index.client.list_collections()}
        for tenant in c.tenants():
            if f"gw-{tenant}" in names:
                add("chunks", *collection_payloads(g.index.tenant(tenant).collection, _SAMPLE))
        for path in audit_paths(g):
            add("audit lines", *audit_payloads(path))
        for store, name in (("drafts", "reviews.sqlite3"), ("quarantine entries", "quarantine.sqlite")):
            if (c.data_path / name).exists():
                add(store, *sqlite_payloads(c.data_path / name))
        clear = {k: v[1] - v[0] for k, v in counts.items() if v[1] > v[0]}
        shown = ", ".join(f"{v[0]}/{v[1]} {k}" for k, v in counts.items()) or "nothing stored yet"
        if clear:
            return False, (f"stored in clear: {', '.join(f'{n} {k}' for k, n in clear.items())} (written before "
                           "encryption was enabled); run 'groundwire sync --rebuild' and 'groundwire keys rotate'")
        return True, f"AES-GCM, current key id {codec.current!r}; encrypted: {shown}"

    return run(AT_REST, lambda: f"enabled={c.encryption.enabled}, provider={c.encryption.provider}", check)
