"""Uploaded articles into `<corpus>/uploads/`: plain file names only, checked before anything is stored, all or
nothing."""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from qa.errors import QAError
from qa.ingest import read_file
from qa.types import Skipped

log = logging.getLogger(__name__)

UPLOAD_SUFFIXES = (".txt", ".md", ".html", ".json", ".jsonl")
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_UPLOAD_FILES = 20
UPLOAD_FOLDER = "uploads"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_ENCODED_PATH = re.compile(r"%(?:2f|5c|00)|%2e%2e", re.IGNORECASE)  # URL-encoded /, \, NUL and ..


class UploadRefused(QAError):
    """An uploaded file that is not stored; the message says which and why."""


def store_uploads(corpus: Path, paths: Sequence[str | Path], names: Sequence[str]) -> list[Path]:
    """Copy uploaded files into `<corpus>/uploads/` under sanitised, unique names; all or nothing. UploadRefused,
    before anything is stored, for a name, size, count or content that cannot be indexed."""
    if not corpus.is_dir():
        raise UploadRefused(f"the corpus {corpus} is a single file; uploads need a corpus folder")
    if not paths:
        raise UploadRefused("choose at least one file to upload")
    if len(paths) > MAX_UPLOAD_FILES:
        raise UploadRefused(f"at most {MAX_UPLOAD_FILES} files at a time")
    checked = [(Path(path), safe_upload_name(name)) for path, name in zip(paths, names, strict=True)]
    for path, name in checked:
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise UploadRefused(f"{name} is {size} bytes; the limit is {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
    for path, name in checked:  # refused now rather than skipped by the next build
        skipped = [item for item in read_file(path, Path(name).suffix.lower()) if isinstance(item, Skipped)]
        if skipped:
            where = skipped[0].origin.removeprefix(str(path))
            raise UploadRefused(f"{name}{where} cannot be indexed: {skipped[0].reason}; nothing was added")
    folder = corpus / UPLOAD_FOLDER
    folder.mkdir(exist_ok=True)
    if folder.is_symlink() or not folder.resolve().is_relative_to(corpus.resolve()):
        raise UploadRefused(f"{folder} leads outside the corpus folder")
    return _store_all(checked, folder)


def upload_name_problem(name: str) -> str | None:
    """Why `name` is not a plain file name to upload, as the refusal message; None when it is one. Refused:
    paths (/ or \\, or them URL-encoded), .. URL-encoded, NUL or other control characters, a leading dot.
    Fullwidth look-alikes (／ ＼ ．) count as what NFKC makes of them."""
    forms = (name, unicodedata.normalize("NFKC", name))
    if any("/" in form or "\\" in form for form in forms):
        why = "is a path, not a file name"
    elif any(_ENCODED_PATH.search(form) for form in forms):
        why = "holds a URL-encoded path (%2f, %5c, %00 or %2e%2e), not a file name"
    elif any(unicodedata.category(c) == "Cc" for c in name):
        why = "holds control characters, not a file name"
    elif any(form.startswith(".") for form in forms):
        why = "starts with a dot (a hidden file or a path), not a file name"
    else:
        return None
    return f"refused: {name!r} {why}; upload files by their own names"


def safe_upload_name(name: str) -> str:
    """A file name that is safe to create in the corpus folder, keeping a supported suffix; UploadRefused for a
    name that is not a plain file name (upload_name_problem) or lacks a supported suffix."""
    if problem := upload_name_problem(name):
        raise UploadRefused(problem)
    base = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    suffix = next((s for s in UPLOAD_SUFFIXES if base.lower().endswith(s)), None)
    if suffix is None:
        raise UploadRefused(f"{name!r}: only {' '.join(UPLOAD_SUFFIXES)} files can be uploaded")
    stem = _UNSAFE_NAME.sub("_", base[: -len(suffix)]).strip("._-")[:80] or "upload"
    return stem + suffix


def _store_all(files: Sequence[tuple[Path, str]], folder: Path) -> list[Path]:
    """Copy each (source, name) into `folder` all or nothing: each is written under a hidden temporary name
    (which a build skips) and synced, then all are linked to their names, never replacing a file (`name-2`
    when taken). On any failure whatever this call wrote is removed and UploadRefused says why."""
    token = secrets.token_hex(4)
    written: list[Path] = []
    stored: list[Path] = []
    try:
        for number, (source, name) in enumerate(files):
            part = folder / f".tmp-{token}-{number}-{name}"
            written.append(part)
            with open(source, "rb") as reader, open(part, "xb") as writer:
                shutil.copyfileobj(reader, writer)
                writer.flush()
                os.fsync(writer.fileno())
        for part, (_, name) in zip(written, files, strict=True):
            stored.append(_link_new(part, folder, name))
    except BaseException as error:
        for path in stored:
            path.unlink(missing_ok=True)
        if not isinstance(error, OSError):
            raise
        why = error.strerror or str(error)
        log.warning("upload not stored (%s); removed what it wrote", why)
        raise UploadRefused(
            f"the upload could not be stored ({why.lower()}); nothing was added, the corpus is as it was"
        ) from None
    finally:
        for part in written:
            part.unlink(missing_ok=True)
    return stored


def _link_new(part: Path, folder: Path, name: str) -> Path:
    """A second name for `part`: `folder/name`, or `name-2`, `name-3`... never replacing an existing file."""
    stem, suffix = Path(name).stem, Path(name).suffix
    for number in range(1, 1000):
        target = folder / (name if number == 1 else f"{stem}-{number}{suffix}")
        try:
            os.link(part, target)
            return target
        except FileExistsError:
            continue
    raise UploadRefused(f"too many files named {name} in {folder}")
