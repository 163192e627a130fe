"""Where results go, and writing them safely: the one mechanism every writer of results uses.

- bordersim replaces only what it wrote. A results folder it wrote holds ``MARKER``, naming its
  kind (run, compare, sweep): a folder is replaced only by a command of its kind. Every file
  bordersim writes is listed with its SHA-256 in the manifest ``FILES`` of its folder (an HTML
  report instead carries its own SHA-256: ``sign_html``), and a folder or file is replaced only
  while it holds nothing else and nothing changed since: anything else is refused
  (``OutputError``: one line, exit 2) before any work starts.
- A folder appears whole: it is written under a temporary name beside its target (same
  filesystem), then exchanged with the target in one step.
- A writer holds its folder from its start to its end: a run or compare holds an flock on its
  temporary folder (made when the command starts, before the replications), a sweep and
  ``bordersim report`` hold one on the folder's marker while they write in it. A second writer
  tries these locks without waiting and is refused while any is held. The check and the swap
  also hold an exclusive flock on the parent folder, so the target always holds one complete
  result.
- A kill leaves at most a temporary sibling (``.NAME.tmp-*``, ``.NAME.old-*``), which the next
  writer beside it removes: the kernel drops a dead process's locks, even on SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .errors import OutputError, ScenarioError

MARKER = ".bordersim"  # in every results folder: {"written_by": "bordersim", "kind": ..., "files": FILES}
FILES = ".bordersim-files.json"  # in every folder bordersim writes files to: their paths and SHA-256
KINDS = ("run", "compare", "sweep", "optimise")  # the kinds of results folder, each written by its own command
# What a folder of each kind held when bordersim wrote a marker without "files" (it did not list
# its files then): those names are taken as bordersim's; any other file there is someone's.
WRITTEN_BEFORE_LISTS = {
    "run": {"summary.csv", "per_replication.csv", "daily.csv", "queue_by_hour.csv", "time_in_system_hist.csv",
            "metadata.json", "report.html", "queue_by_hour.png", "time_in_system.png", "crossings_per_day.png",
            "queue_by_date.png"},
    "compare": {"compare.csv", "summary.csv", "daily.csv", "time_in_system_hist.csv", "metadata.json", "report.html",
                "compare_differences.png", "time_in_system.png", "queue_by_date.png"},
}
SLUG_MAX = 200  # a file name has at most 255 bytes; the temporary names add 14
_SLUG = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_REMEDY = "choose another --out"
# one line for every refusal because another bordersim process holds a folder, whatever it does there
IN_USE = ("another bordersim command is using it now (writing its results, running a sweep or writing a "
           "report); wait for it to end")


def version() -> str:
    try:
        return metadata.version("bordersim")
    except metadata.PackageNotFoundError:
        return "unknown"


def check_slug(name: object, file: str | None, field: str) -> str:
    """A name that becomes a folder name (``results/<name>``): refused unless a plain name, so
    it can neither climb out of results/ nor name results/ itself."""
    if not (isinstance(name, str) and _SLUG.fullmatch(name) and len(name) <= SLUG_MAX):
        raise ScenarioError(file, field, f"{name!r} is not a plain name: allowed are letters A-Z a-z, digits, "
                                         f"'_', '-' and '.' (not first), 1 to {SLUG_MAX} characters")
    return name


# ------------------------------------------------------------------ what may be written


def check_target(out: str | Path, kind: str, own: Path | None = None) -> bool:
    """Decide, before any work, whether results of ``kind`` may go to folder ``out``: True if it
    holds results bordersim wrote (they will be replaced), False if it is absent or empty.
    Anything else is an OutputError: a file, a link, a folder bordersim did not write, results
    of another kind, a folder another bordersim process holds (``own``: the caller's temporary,
    not counted), or a file bordersim did not write or that changed since (named)."""
    out = Path(out)
    if out.name in ("", ".."):
        raise OutputError(str(out), None, "names no folder of its own; give a folder name, e.g. results/my_run")
    outer = next((d for d in out.parents if read_marker(d) is not None), None)
    if outer is not None:
        raise OutputError(str(out), None, f"is inside {outer}, which {_kind_words(read_marker(outer))}; {_REMEDY}")
    try:
        st = os.lstat(out)
    except (FileNotFoundError, NotADirectoryError):
        _check_parent(out)
        _check_no_writer(out, own)
        return False
    except OSError as exc:
        raise OutputError(str(out), None, f"cannot be examined: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise OutputError(str(out), None, f"is a symbolic link; {_REMEDY}")
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(str(out), None, f"exists and is not a folder; {_REMEDY}")
    _check_parent(out)
    marker = read_marker(out)
    if marker is None:
        try:
            with os.scandir(out) as entries:
                empty = next(entries, None) is None
        except OSError as exc:
            raise OutputError(str(out), None, f"cannot be read: {exc.strerror}") from None
        if empty:
            _check_no_writer(out, own)
            return False
        raise OutputError(str(out), None, f"exists and was not written by bordersim (no {MARKER} marker); {_REMEDY}")
    if marker.get("kind") != kind:
        raise OutputError(str(out), None, f"{_kind_words(marker)}, not a {kind}; {_REMEDY}")
    _check_no_writer(out, own)
    foreign = _foreign(out, marker)
    if foreign is not None:
        raise OutputError(str(out), None, f"holds {foreign}: move it out of the folder, or choose another "
                                          "--out")
    return True


def _kind_words(marker: dict) -> str:
    """What a results folder holds, by its marker: 'holds the results of a bordersim sweep'."""
    other = marker.get("kind")
    if other in KINDS:
        return f"holds the results of a bordersim {other}: only a {other} replaces them"
    return "holds bordersim results of another kind"


def read_marker(folder: str | Path) -> dict | None:
    """The marker of a folder bordersim wrote (a regular file naming bordersim), or None."""
    marker = Path(folder) / MARKER
    try:
        if not stat.S_ISREG(os.lstat(marker).st_mode):
            return None
        with marker.open("rb") as fh:
            data = json.loads(fh.read(4096))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("written_by") == "bordersim" else None


def _check_no_writer(out: Path, own: Path | None) -> None:
    """Refuse while another bordersim process holds ``out``: a sweep or a report writing in it
    (the flock of its marker), or a run or compare writing its results (a temporary beside it
    whose flock is held)."""
    if _held(out / MARKER):
        raise OutputError(str(out), None, f"{IN_USE} or choose another --out")
    for path in _temporaries(out):
        if path != own and _held(path):
            raise OutputError(str(out), None, f"{IN_USE} or choose another --out")


def _temporaries(target: Path) -> list[Path]:
    """The temporaries of writers of ``target`` beside it (``.NAME.tmp-*``, ``.NAME.old-*``)."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(?:tmp|old)-[0-9a-f]{{8}}")
    try:
        with os.scandir(target.parent) as entries:
            return sorted(target.parent / e.name for e in entries if pattern.fullmatch(e.name))
    except OSError:
        return []


def _held(path: Path) -> bool:
    """A live process holds the flock of ``path`` (a file or folder; False if it cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _foreign(folder: Path, marker: dict) -> str | None:
    """The first entry of a results folder (by path, in order) that bordersim did not write or
    that changed since, and why it stops a rerun; None if everything in it is bordersim's,
    unchanged."""
    recorded = _manifest(folder)
    listed_all = marker.get("files") == FILES  # else written before the folder listed its files
    known = set() if listed_all else WRITTEN_BEFORE_LISTS.get(str(marker.get("kind")), set())
    dirs = {p.as_posix() for r in recorded for p in Path(r).parents}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames) + sorted(filenames):
            path = base / name
            rel = path.relative_to(folder).as_posix()
            if rel in (MARKER, FILES):
                continue
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(mode):
                if rel not in dirs:
                    return f"{rel}/, a folder bordersim did not make (a rerun would delete it)"
                continue
            if not stat.S_ISREG(mode):
                return f"{rel}, which bordersim did not write (a rerun would delete it)"
            if is_own_report(path):
                continue
            if rel in recorded:
                if _sha256(path) != recorded[rel]:
                    return f"{rel}, changed since bordersim wrote it (a rerun would replace it)"
            elif rel not in known:
                return f"{rel}, which bordersim did not write (a rerun would delete it)"
    return None


def check_files(paths: Iterable[str | Path], kind: str | None = None, below: bool = False) -> None:
    """Refuse, before any work, to write over a file bordersim did not write: each path must be
    absent or hold exactly what bordersim recorded for it in its folder's FILES manifest (or be
    a report of bordersim's that certifies itself, unchanged); a file changed since is
    someone's work, and kept. A file may go into a results folder only if that folder is of
    ``kind`` (a sweep's own files, the folder's own report), and below it only with ``below``
    (a sweep's chunks, in the folder it holds)."""
    for path in map(Path, paths):
        results = next((d for d in path.parents if read_marker(d) is not None), None)
        if results is not None and ((results != path.parent and not below)
                                    or read_marker(results).get("kind") != kind):
            raise OutputError(str(path), None, f"is inside {results}, which {_kind_words(read_marker(results))}; "
                                               "write elsewhere")
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            _check_parent(path)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise OutputError(str(path), None, "is a symbolic link; write elsewhere")
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(str(path), None, "exists and is not a file; write elsewhere")
        _check_parent(path)
        if not is_own_report(path) and _recorded(path) != _sha256(path):
            raise OutputError(str(path), None, f"exists and was not written by bordersim (or was changed since: "
                                               f"not as recorded in {FILES}); write elsewhere")


def _check_parent(path: Path) -> None:
    """A target can be created or replaced in its folder: the nearest existing folder above it
    is a folder we may write in."""
    for parent in path.parents:
        if os.path.lexists(parent):
            if not os.path.isdir(parent):
                raise OutputError(str(path), None, f"cannot be written: {parent} is not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutputError(str(path), None, f"cannot be written: no permission to write in {parent}")
            return


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(folder: Path) -> dict[str, str]:
    """The files bordersim wrote in this folder, path (relative, '/'-separated) -> SHA-256."""
    try:
        data = json.loads((folder / FILES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not (isinstance(data, dict) and data.get("written_by") == "bordersim" and isinstance(data.get("files"), dict)):
        return {}
    return {k: v for k, v in data["files"].items() if isinstance(v, str)}


def _recorded(path: Path) -> str | None:
    return _manifest(path.parent).get(path.name)


# ------------------------------------------------------------------ reports that certify themselves

# An HTML report carries its own SHA-256 in a meta tag (over the page with that tag's content
# empty), so bordersim knows its own unchanged report wherever it is, with no manifest beside it
# (`bordersim report -o` into a user's folder leaves nothing else there).
_SIGNATURE = re.compile(rb'<meta name="bordersim-sha256" content="([0-9a-f]{64})">')
_SIGNATURE_AT = '<meta name="generator" content="bordersim'


def sign_html(html: str) -> str:
    """The page with its SHA-256 in a meta tag after its generator tag (which it must have)."""
    at = html.index(_SIGNATURE_AT)
    at = html.index(">", at) + 1
    blank = html[:at] + '\n<meta name="bordersim-sha256" content="">' + html[at:]
    digest = hashlib.sha256(blank.encode("utf-8")).hexdigest()
    return blank.replace('content="">', f'content="{digest}">', 1)


def is_own_report(path: Path) -> bool:
    """``path`` is an HTML report bordersim wrote and nobody changed since (its content matches
    the SHA-256 it carries)."""
    if path.suffix.lower() not in (".html", ".htm"):
        return False
    try:
        data = path.read_bytes()
    except OSError:
        return False
    m = _SIGNATURE.search(data, 0, 4096)
    if m is None:
        return False
    blank = data[:m.start(1)] + data[m.end(1):]
    return hashlib.sha256(blank).hexdigest() == m.group(1).decode("ascii")


# ------------------------------------------------------------------ writing


@dataclass
class Staged:
    """A results folder being written: fill ``dir``; on leaving the block it becomes ``out``, and
    ``replaced`` says whether it replaced earlier results bordersim wrote."""

    dir: Path
    out: Path
    kind: str
    replaced: bool = False


@contextlib.contextmanager
def atomic_dir(out: str | Path, kind: str) -> Iterator[Staged]:
    """A fresh folder beside ``out`` (permissions from the umask, MARKER in it) that replaces
    ``out`` in one step when the block ends, every file in it listed in its FILES manifest; on
    any exception (KeyboardInterrupt included; the CLI turns SIGTERM into one) it is removed and
    ``out`` is left as it was. From the block's start the folder is this writer's: others are
    refused until it ends (enter the block before the work, so that they are refused at once)."""
    out = Path(out)
    check_target(out, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    with _locked(out.parent):
        _check_no_writer(out, None)  # two writers that passed the check above at once: one is refused here
        tmp, fd = _new_temporary(out, "tmp", _make_dir)
    try:
        staged = Staged(tmp, out, kind)
        marker = {"written_by": "bordersim", "kind": kind, "version": version(), "files": FILES}
        (tmp / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        yield staged
        _record_all(tmp)
        with _locked(out.parent):
            staged.replaced = check_target(out, kind, own=tmp)
            _clear_debris(out)
            earlier = _swap(tmp, out)
            if earlier is not None:
                _remove_ours(earlier)
    except BaseException:
        if os.path.lexists(tmp):  # our partial folder, or the earlier contents after a swap
            with contextlib.suppress(OSError):  # else the next writer removes it
                _remove_ours(tmp)
        raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def holding(folder: str | Path, elsewhere: bool = False) -> Iterator[None]:
    """Hold a results folder for the block, however long (a sweep holds its folder for its whole
    run, resumed or new): the flock of its marker. A writer that would replace it is refused
    meanwhile; refused itself if another process holds it, or if another writer put a new
    folder in its place between the marker's opening and its lock (the lock would hold the old
    one). ``elsewhere``: the caller can write elsewhere instead (its --out), and a refusal says so."""
    marker = Path(folder) / MARKER
    remedy = f" or {_REMEDY}" if elsewhere else ""
    try:
        fd = os.open(marker, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise OutputError(str(folder), None, f"cannot be held: its {MARKER} marker cannot be opened "
                                             f"({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(str(folder), None, f"{IN_USE}{remedy}") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.lstat(marker))
        except OSError:
            same = False
        if not same:
            again = f"run again, or {_REMEDY}" if elsewhere else "run again"
            raise OutputError(str(folder), None, f"another bordersim command put new results in it at the same "
                                                 f"time; {again}")
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive flock of a file in a folder this process holds, for a library's own journal
    written in place (an optimisation's optuna journal): the kernel drops it when the process
    dies, so a kill leaves no lock file behind to wait on."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | Path, kind: str | None = None, record: bool = True,
                below: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write one file to; when the block ends it replaces
    ``path`` whole (flushed to disk first) and, with ``record``, is listed in the folder's FILES
    manifest (an HTML report certifies itself instead: ``sign_html``). A ``path`` bordersim did
    not write is refused (check_files), and so is one inside a results folder of another kind
    than ``kind``, or below one without ``below``. What a killed writer of ``path`` left beside
    it is removed."""
    path = Path(path)
    check_files([path], kind, below)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        with _locked(path.parent):
            tmp, fd = stack.enter_context(_temporary_file(path))
        yield tmp
        os.fsync(fd)
        with _locked(path.parent):
            check_files([path], kind, below)
            _clear_debris(path)
            os.replace(tmp, path)
            if record:
                _record(path)


def _record(path: Path) -> None:
    """Add ``path``'s current SHA-256 to its folder's manifest (the caller holds the folder's lock)."""
    files = _manifest(path.parent)
    files[path.name] = _sha256(path)
    _write_manifest(path.parent, files)


def _record_all(folder: Path) -> None:
    """List every file below ``folder`` (a staged folder: its writer's alone) in its manifest."""
    files = {}
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(folder).as_posix()
            if rel not in (MARKER, FILES):
                files[rel] = _sha256(path)
    _write_manifest(folder, files)


def _write_manifest(folder: Path, files: dict[str, str]) -> None:
    manifest = folder / FILES
    text = json.dumps({"written_by": "bordersim", "version": version(), "files": dict(sorted(files.items()))},
                      indent=2) + "\n"
    _clear_debris(manifest)
    with _temporary_file(manifest) as (tmp, fd):
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
        os.replace(tmp, manifest)


@contextlib.contextmanager
def _temporary_file(target: Path) -> Iterator[tuple[Path, int]]:
    """A new, locked temporary file beside ``target`` and its descriptor (created while the
    caller holds the parent's lock); removed if the block fails."""
    tmp, fd = _new_temporary(target, "tmp", _make_file)
    try:
        yield tmp, fd
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive flock on a folder for the block (flock works on folders on Linux and leaves
    no lock file behind); it is released when the process dies."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _make_dir(path: Path) -> int:
    os.mkdir(path, 0o777)  # the umask applies, as for any file (tempfile.mkdtemp would give 0700)
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)


def _make_file(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)


def _new_temporary(target: Path, kind: str, make: Callable[[Path], int]) -> tuple[Path, int]:
    """Create ``.NAME.<kind>-<random>`` beside the target and flock it for as long as the
    returned descriptor is open. The caller holds the parent's lock, so no cleaner sees it
    before it is locked."""
    for _ in range(100):
        path = target.parent / f".{target.name}.{kind}-{secrets.token_hex(4)}"
        try:
            fd = make(path)
        except FileExistsError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return path, fd
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target))


def _clear_debris(target: Path) -> None:
    """Remove what killed writers left beside ``target`` (the caller holds the parent's lock):
    temporaries whose flock can be taken (their writer is dead), a folder only if it holds our
    marker or nothing. One that cannot be removed is left for a later writer."""
    for path in _temporaries(target):
        with _abandoned(path) as mode, contextlib.suppress(OSError):
            if mode is not None and stat.S_ISREG(mode):
                path.unlink()
            elif mode is not None and stat.S_ISDIR(mode) and (read_marker(path) is not None or not os.listdir(path)):
                _remove_ours(path)


@contextlib.contextmanager
def _abandoned(path: Path) -> Iterator[int | None]:
    """Hold the flock of ``path`` (a file or folder, not followed if a link) if it is free: yields
    its st_mode then (its writer is dead: the kernel drops a dead process's locks), None when a
    live writer holds it, it is neither a file nor a folder, or it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        yield None
        return
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            mode = None
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # BlockingIOError: a live writer's
                mode = None
        yield mode
    finally:
        os.close(fd)


@contextlib.contextmanager
def scratch_dir(prefix: str, own: "re.Pattern[str]") -> Iterator[Path]:
    """A private folder in the system's temporary folder (``<prefix><random>``), flocked while in
    use and removed after. A kill -9 cannot be cleaned up after, so each call first removes the
    folders of that prefix whose lock is free (their user is dead) and that hold only entries
    whose names ``own`` matches (what the user writes there: files, or folders removed whole);
    any other is left alone. A new folder is locked before use; one that a concurrent sweep
    removed in between is made again."""
    import tempfile

    root = Path(tempfile.gettempdir())
    with contextlib.suppress(OSError), os.scandir(root) as entries:
        stale = [Path(e.path) for e in entries if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)]
    for folder in stale:
        with _abandoned(folder) as mode, contextlib.suppress(OSError):
            names = os.listdir(folder) if mode is not None and stat.S_ISDIR(mode) else None
            if names is not None and all(own.fullmatch(n) for n in names):
                shutil.rmtree(folder)  # links inside are removed, not followed
    for _ in range(100):
        tmp = Path(tempfile.mkdtemp(prefix=prefix))
        fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            still_there = os.path.samestat(os.fstat(fd), os.stat(tmp))
        except (BlockingIOError, FileNotFoundError):  # empty: another call's sweep took it first
            still_there = False
        if still_there:
            break
        os.close(fd)
    else:
        raise FileExistsError(errno.EEXIST, "no scratch folder that stayed", str(root / prefix))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(fd)


def _remove_ours(folder: Path) -> None:
    """Remove a folder bordersim wrote, its marker last, so that a kill midway leaves a folder
    still recognisably ours (and removed by the next writer)."""
    for entry in list(os.scandir(folder)):
        if entry.name == MARKER:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / MARKER)
    os.rmdir(folder)


def _swap(new: Path, out: Path) -> Path | None:
    """Put folder ``new`` at ``out`` (the caller holds the parent's lock); return where the
    earlier contents of ``out`` now are, if it existed."""
    if not os.path.lexists(out):
        os.rename(new, out)  # a folder onto a name that does not exist: one step
        return None
    if _exchange(new, out):
        return new
    # Without an exchange there is an instant with no ``out``; a kill there leaves the earlier
    # results in .NAME.old-*, which the next writer removes.
    old, fd = _new_temporary(out, "old", _make_dir)
    os.close(fd)  # its own lock is not needed: it exists only while the parent's lock is held
    os.rename(out, old)  # a folder onto an empty folder: allowed
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)
        raise
    return old


# No well-kept library exchanges two folders atomically (os.replace cannot replace a non-empty
# folder), so this calls Linux's renameat2(RENAME_EXCHANGE) itself (glibc >= 2.28).
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _load_renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step; False where the system or filesystem cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))
