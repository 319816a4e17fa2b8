"""Confined file sources: what every connector that reads local files uses to walk and read its root.

A :class:`ConfinedRoot` is a connector's only view of the file system. Invariants (each has a test in the
connector contract, ``groundwire.testing.ConnectorContract``):

- **Inside the root only.** The root is resolved to its real path once. Every read opens the path one
  component at a time from a descriptor of the root with ``O_NOFOLLOW``, so no symbolic link (in any
  component, swapped in at any time) and no ``..`` can make a read leave the root.
- **No links by default.** A symbolic link is skipped with a reason. With ``follow_symlinks=True`` a link to
  a *file* whose resolved target stays inside the root, and which the walk's ``include`` filter would admit
  (not hidden, not excluded), is read (from its target, again confined); a link that leaves the root,
  dangles, points at a folder or at a filtered file is skipped. Folders are never entered through links,
  so a link loop cannot make a walk recurse.
- **Regular files only.** FIFOs, sockets and devices are skipped before they are opened (``lstat``), and
  every open uses ``O_NONBLOCK`` and re-checks ``fstat``, so a FIFO named ``notes.md`` never blocks a sync.
- **Bounded reads.** At most ``max_bytes`` are ever read from a file, whatever its reported size.
- **UTF-8 names.** An entry whose name is not valid UTF-8 (``notes\\xff.md``) is skipped: its id could not be
  stored, cited or printed. Skipped items carry a printable name (``\\xff`` escaped).
- Reasons never contain a path outside the root (a link's target is not named), so a sync report cannot
  disclose another tenant's folder layout.

- **No hard links by default.** A regular file with more than one name (``st_nlink > 1``) may be a hard link
  to a file outside the root (another tenant's folder, a file the connector's user can read but nobody put
  in the knowledge base): a hard link cannot be told from its target, so every such file is skipped with a
  reason, by the walk (``lstat``) and again at the read (``fstat`` of the opened file, so a link made after the
  walk is refused too). ``follow_hardlinks=True`` reads them (for roots on file systems where the operator
  knows every name of every file, e.g. deduplicating backup trees). Skipped this way too: a followed symbolic
  link whose target has several names, and a sidecar that is a hard link.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ConfinedRoot", "SourceEntry", "SourceRefused", "SourceSkip", "printable_name"]

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOCTTY = getattr(os, "O_NOCTTY", 0)
_DIR_FD = os.open in os.supports_dir_fd and bool(_O_NOFOLLOW)
_READ_CHUNK = 1 << 20


class SourceRefused(Exception):
    """A read that the confinement rules refuse; ``reason`` says why (safe to show in a sync report)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SourceEntry:
    """A regular file found inside the root.

    :param rel: POSIX path relative to the root (valid UTF-8, no ``..``); the link's own path for a followed link
    :param target: the relative path actually read (differs from ``rel`` only for a followed link)
    """

    rel: str
    target: str
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class SourceSkip:
    """An entry the walk refused, with a printable name and the reason."""

    item: str
    reason: str


def printable_name(name: str) -> str:
    """``name`` with undecodable bytes (surrogate escapes) shown as ``\\xNN``: always encodable as UTF-8."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


class ConfinedRoot:
    """Walk and read the files under ``root`` by the rules in the module docstring.

    :param root: the configured folder (resolved to its real path; must exist)
    :param follow_symlinks: read links to files whose real target is inside the root
    :param max_bytes: the most bytes :meth:`read` returns; a larger file is refused
    :param follow_hardlinks: read regular files that have more than one name (default: skip them)
    """

    def __init__(
        self, root: str | Path, *, follow_symlinks: bool = False, max_bytes: int = 25 * 1024 * 1024,
        follow_hardlinks: bool = False,
    ) -> None:
        self.root = Path(os.path.realpath(root))
        self.follow_symlinks = follow_symlinks
        self.follow_hardlinks = follow_hardlinks
        self.max_bytes = max_bytes

    # --- paths -----------------------------------------------------------------------------------------

    def contains(self, real: str) -> bool:
        """True if the real (resolved) path ``real`` is the root or inside it."""
        root = str(self.root)
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def uri(self, rel: str) -> str:
        """A ``file:`` URI for ``rel`` inside the root (never a link's target outside it)."""
        return (self.root / _check_rel(rel)).as_uri()

    # --- walking ---------------------------------------------------------------------------------------

    def walk(self, include: Callable[[str, bool], bool] | None = None) -> Iterator[SourceEntry | SourceSkip]:
        """Yield every regular file (sorted, depth first) and a :class:`SourceSkip` for every refused entry.

        A sub-folder that cannot be read is a skip (its files count as gone); the root itself raises
        :class:`SourceRefused`, so a caller never mistakes an unreadable root for an empty one.

        :param include: ``include(rel, is_dir)`` -> False drops an entry silently (hidden files, excludes)
        """
        yield from self._walk("", include or (lambda rel, is_dir: True))

    def _walk(self, rel_dir: str, include: Callable[[str, bool], bool]) -> Iterator[SourceEntry | SourceSkip]:
        try:
            fd = self._open_dir(rel_dir)
        except (OSError, SourceRefused) as exc:
            if not rel_dir:  # nothing can be enumerated: never let that look like "every file was deleted"
                raise SourceRefused(f"the root folder {self.root} cannot be read: {_reason(exc)}") from exc
            yield SourceSkip(printable_name(rel_dir), f"folder not read: {_reason(exc)}")
            return
        try:
            with os.scandir(fd) as it:
                names = sorted(e.name for e in it)
            subdirs: list[str] = []
            for name in names:
                rel = f"{rel_dir}/{name}" if rel_dir else name
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError as exc:
                    yield SourceSkip(printable_name(rel), f"cannot stat: {exc.strerror}")
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if not include(rel, is_dir):
                    continue
                if printable_name(name) != name:
                    what = "folder" if is_dir else "file"
                    yield SourceSkip(printable_name(rel), f"{what} name is not valid UTF-8: not indexed; rename it")
                    continue
                if is_dir:
                    subdirs.append(rel)
                elif stat.S_ISREG(st.st_mode):
                    linked = self._hardlinked(st)
                    yield SourceSkip(rel, linked) if linked else SourceEntry(rel, rel, st.st_size, st.st_mtime_ns)
                elif stat.S_ISLNK(st.st_mode):
                    yield self._link(rel, include)
                else:
                    yield SourceSkip(rel, f"{_kind(st.st_mode)}, not a regular file: never read")
        finally:
            os.close(fd)
        for sub in subdirs:
            yield from self._walk(sub, include)

    def _link(self, rel: str, include: Callable[[str, bool], bool]) -> SourceEntry | SourceSkip:
        if not self.follow_symlinks:
            return SourceSkip(rel, "symbolic link: not followed (follow_symlinks = false)")
        real = os.path.realpath(self.root / rel)
        if not self.contains(real) or real == str(self.root):
            return SourceSkip(rel, "symbolic link pointing outside the configured root: never read")
        target = Path(real).relative_to(self.root).as_posix()
        parts = target.split("/")
        if printable_name(target) != target:
            return SourceSkip(rel, "symbolic link to a file whose name is not valid UTF-8: not followed")
        dirs_ok = all(include("/".join(parts[: k + 1]), True) for k in range(len(parts) - 1))
        if not dirs_ok or not include(target, False):
            return SourceSkip(rel, "symbolic link to a file that is excluded or hidden: not followed")
        try:
            st = os.stat(real, follow_symlinks=False)
        except OSError:
            return SourceSkip(rel, "symbolic link whose target does not exist")
        if not stat.S_ISREG(st.st_mode):
            return SourceSkip(rel, f"symbolic link to {_kind(st.st_mode)}: not followed")
        linked = self._hardlinked(st)
        if linked:
            return SourceSkip(rel, f"symbolic link to a file that {linked.removeprefix('a file that ')}")
        return SourceEntry(rel, target, st.st_size, st.st_mtime_ns)

    def _hardlinked(self, st: os.stat_result) -> str | None:
        """Why a regular file with ``st`` is refused as a possible hard link, or None."""
        if st.st_nlink > 1 and not self.follow_hardlinks:
            return (f"a file that has {st.st_nlink} names (a hard link, maybe to a file outside the root): "
                    "never read (follow_hardlinks = false)")
        return None

    # --- reading ---------------------------------------------------------------------------------------

    def read(self, entry: SourceEntry | str, max_bytes: int | None = None) -> bytes:
        """The bytes of a regular file inside the root; :class:`SourceRefused` names what is wrong.

        ``FileNotFoundError`` propagates (callers treat a missing file as absent).
        """
        limit = self.max_bytes if max_bytes is None else max_bytes
        target = entry.target if isinstance(entry, SourceEntry) else entry
        fd = self._open_file(target)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SourceRefused(f"{_kind(st.st_mode)}, not a regular file: never read")
            linked = self._hardlinked(st)  # again on the open file: a link made after the walk
            if linked:
                raise SourceRefused(linked)
            if st.st_size > limit:
                raise SourceRefused(f"larger than the limit of {limit} bytes")
            out = bytearray()
            while True:
                block = os.read(fd, min(_READ_CHUNK, limit + 1 - len(out)))
                if not block:
                    return bytes(out)
                out += block
                if len(out) > limit:
                    raise SourceRefused(f"larger than the limit of {limit} bytes (grew while reading)")
        finally:
            os.close(fd)

    def exists(self, rel: str) -> bool:
        """True if an entry (of any kind, links included, not followed) named ``rel`` exists inside the root."""
        try:
            os.stat(self.root / _check_rel(rel), follow_symlinks=False)
        except (OSError, SourceRefused):
            return False
        return True

    def _open_dir(self, rel_dir: str) -> int:
        flags = os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC
        fd = os.open(self.root, flags)
        if not rel_dir:
            return fd
        if not _DIR_FD:  # pragma: no cover - platforms without openat: check the resolved path instead
            os.close(fd)
            real = os.path.realpath(self.root / _check_rel(rel_dir))
            if real != str(self.root / rel_dir):
                raise SourceRefused("path goes through a symbolic link")
            return os.open(real, flags)
        try:
            for part in _check_rel(rel_dir).split("/"):
                nfd = os.open(part, flags | _O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_file(self, rel: str) -> int:
        parent, _, name = _check_rel(rel).rpartition("/")
        flags = os.O_RDONLY | _O_NONBLOCK | _O_NOFOLLOW | _O_CLOEXEC | _O_NOCTTY
        try:
            dfd = self._open_dir(parent)
        except NotADirectoryError as exc:
            raise SourceRefused("path goes through something that is not a folder") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # ELOOP: a link in the path
                raise SourceRefused("path goes through a symbolic link") from exc
            raise
        try:
            if _DIR_FD:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            else:  # pragma: no cover
                st = os.stat(self.root / rel, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise SourceRefused("symbolic link: never read through")
            if not stat.S_ISREG(st.st_mode):
                raise SourceRefused(f"{_kind(st.st_mode)}, not a regular file: never read")
            if _DIR_FD:
                return os.open(name, flags, dir_fd=dfd)
            return os.open(self.root / rel, flags)  # pragma: no cover
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SourceRefused("symbolic link: never read through") from exc
            raise
        finally:
            os.close(dfd)


def _check_rel(rel: str) -> str:
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise SourceRefused(f"not a plain relative path inside the root: {printable_name(rel)!r}")
    return rel


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SourceRefused):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
