"""Safe file writing: nothing half-written ever looks complete, nothing is overwritten silently."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clinsynth.errors import ClinsynthError


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _default_file_mode() -> int:
    return 0o666 & ~_umask()


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; it is renamed onto ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, _default_file_mode())  # mkstemp makes 0600; results are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json_atomic(target: str | Path, data: Any) -> None:
    write_text_atomic(target, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


@contextmanager
def new_directory(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Build a directory in a hidden staging folder and move it into place only when complete.

    Refuses an existing non-empty ``target`` unless ``force`` (then it is replaced only after the
    new content is complete). A crash leaves at most a hidden ``.NAME.partial-*`` folder behind.
    """
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not force:
        raise ClinsynthError(
            f"{target} already exists and is not empty. clinsynth never overwrites results: "
            "choose a new folder, or pass --force to replace it."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield staging
        if target.exists():
            backup = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, backup)
            os.replace(staging, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ClinsynthError(f"{path} does not exist.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ClinsynthError(f"{path} is not valid JSON ({exc}); was it edited by hand?") from None
