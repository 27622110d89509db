"""Reading and writing weight files safely: the one place the engine touches checkpoints on disk.

Weight files come from the internet, and a `.pth` file is a pickle: loaded carelessly, it runs
whatever code its author put in it. So checkpoints are only ever read with torch's restricted
unpickler (`weights_only=True`), which refuses any Python global outside a small allowlist of tensor
and container types. Everything that can go wrong while reading a weight file (missing, hostile,
truncated, garbage, NaN-filled) surfaces as one typed `WeightFileError` whose message is a single
line naming the file and the reason, so the GUI and the CLI can show it as is.

Writes go through a temporary sibling file and a rename, so a crash or a full disk never leaves a
half-written weight file where a good one is expected.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import safetensors
import torch
from safetensors.torch import load_file, save_file

from common.atomic_files import atomic_path

__all__ = [
    "CorruptWeightsError",
    "NonFiniteWeightsError",
    "UnsafeCheckpointError",
    "WeightFileError",
    "WeightFileMissingError",
    "check_finite",
    "check_torch_archive",
    "load_torch_checkpoint",
    "read_safetensors",
    "read_safetensors_metadata",
    "sha256_file",
    "write_safetensors_atomic",
]

_ZIP_MAGIC: Final = b"PK\x03\x04"
_MAX_DETAIL: Final = 200
# Elements per slice when scanning a tensor for NaN/inf, so the temporary boolean mask stays at 16 MiB.
_FINITE_CHUNK: Final = 1 << 24
# Bounds on what a zip-format torch checkpoint's directory may claim, checked before torch reads a byte of it
# (a 2 MB file can hold a `data.pkl` that inflates to 2 GiB, and torch inflates an entry whole). torch stores
# every entry uncompressed, so a compressed entry is already unusual; a real one shrinks a few times, not
# the ~1000 times of deflated zeros. The pickle is only the index of the tensors (a few MB for SD1.5 with
# EMA), and no model this app runs comes near _MAX_ARCHIVE_BYTES.
_MAX_INFLATION: Final = 20
_SMALL_ENTRY: Final = 1 << 20  # entries this small may shrink any amount: a bomb needs size
_MAX_PICKLE_BYTES: Final = 256 << 20
_MAX_ARCHIVE_BYTES: Final = 64 << 30

# torch's restricted unpickler reports a refused global in one of two forms:
#   "Unsupported global: GLOBAL builtins.exec was not an allowed global by default. ..."
#   "Trying to load unsupported GLOBAL posix.system whose module posix is blocked."
# (it shortens `builtins.x` to `x`, which `_global_name` undoes).
_GLOBAL_RE: Final = re.compile(r"\bGLOBAL\s+([A-Za-z_][\w.]*\w)")
# Messages that mean "this pickle wants to build or call something outside the allowlist".
_UNSAFE_MARKERS: Final = (
    "unsupported global",
    "is blocked",
    "not an allowed global",
    "call reduce for unrecognized function",
    "can only create new object for",
    "can only build tensor, parameter",
)
# torch wraps the unpickler's own message in a long multi-line explanation; this is what precedes it.
_WRAPPED_DETAIL_RE: Final = re.compile(r"WeightsUnpickler error:\s*(.+?)\s*(?:Check the documentation|$)", re.DOTALL)
_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;]*m")

# What a broken file can make the readers raise. The restricted unpickler fed garbage can also trip
# over its own stack (IndexError, KeyError, TypeError...), which is still just a broken file.
_TORCH_READ_ERRORS: Final = (
    pickle.UnpicklingError,
    RuntimeError,
    EOFError,
    zipfile.BadZipFile,
    ValueError,
    OSError,
    IndexError,
    KeyError,
    TypeError,
    AttributeError,
    AssertionError,
    OverflowError,
)
_SAFETENSORS_READ_ERRORS: Final = (safetensors.SafetensorError, OSError, ValueError, RuntimeError)


# --- errors --------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """Collapse `text` to one line, so every error reads as a single line in a log or a dialog."""
    return " ".join(_ANSI_RE.sub("", text).split())


def _restore_error(cls: type[WeightFileError], path: Path, reason: str) -> WeightFileError:
    """Rebuild a pickled error without calling its subclass-specific `__init__`."""
    error = cls.__new__(cls)
    WeightFileError.__init__(error, path, reason)
    return error


class WeightFileError(Exception):
    """A weight file could not be used; `str()` is one line: "<path>: <reason>"."""

    path: Path
    reason: str

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = _one_line(reason)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as `cls(*args)`, which the subclasses' signatures do not accept; errors
        # must survive the trip to and from a worker process.
        return (_restore_error, (type(self), self.path, self.reason), self.__dict__)


class WeightFileMissingError(WeightFileError):
    """The file does not exist; `hint` (e.g. how to get it) is appended to the reason."""

    hint: str | None

    def __init__(self, path: str | os.PathLike[str], hint: str | None = None) -> None:
        self.hint = hint
        reason = f"file not found (expected at {os.path.abspath(path)})"
        if hint:
            reason += f"; {hint}"
        super().__init__(path, reason)


class UnsafeCheckpointError(WeightFileError):
    """The pickle needs a Python global outside torch's allowlist: loading it could run code."""

    global_name: str | None

    def __init__(self, path: str | os.PathLike[str], global_name: str | None = None) -> None:
        self.global_name = global_name
        if global_name:
            reason = f"refused to load: the checkpoint needs the Python global {global_name}, which could run code"
        else:
            reason = "refused to load: the checkpoint needs Python objects outside the tensor allowlist, which could run code"
        super().__init__(path, reason)


class CorruptWeightsError(WeightFileError):
    """The file is truncated, garbage, or not the structure a weight file should have."""


class NonFiniteWeightsError(WeightFileError):
    """A tensor holds NaN or inf: a broken or diverged checkpoint that would render noise or black."""

    key: str
    count: int

    def __init__(self, path: str | os.PathLike[str], key: str, count: int) -> None:
        self.key = key
        self.count = count
        super().__init__(path, f"tensor {key!r} has {count} NaN/inf value{'' if count == 1 else 's'}")


# --- torch checkpoints ---------------------------------------------------------------------------


def _global_name(message: str) -> str | None:
    """The `module.name` of the global torch refused, if its message names one."""
    match = _GLOBAL_RE.search(message)
    if match is None:
        return None
    name = match.group(1)
    return name if "." in name else f"builtins.{name}"


def _unpickler_detail(error: pickle.UnpicklingError) -> str:
    """The restricted unpickler's own short message, without torch's multi-line advice around it."""
    inner = error.__context__
    if isinstance(inner, pickle.UnpicklingError) and str(inner):
        return str(inner)
    match = _WRAPPED_DETAIL_RE.search(str(error))
    return match.group(1) if match else str(error)


def _starts_with(path: Path, magic: bytes) -> bool:
    """Whether the file begins with `magic` (False if it cannot be read)."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False


def _short(text: str) -> str:
    """One line, at most `_MAX_DETAIL` characters: details go into single-line messages."""
    text = _one_line(text)
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _checkpoint_detail(error: BaseException, path: Path) -> str:
    """Why torch could not read `path`, in a few words."""
    if isinstance(error, EOFError):
        with contextlib.suppress(OSError):
            if path.stat().st_size == 0:
                return "empty file"
        return "file ends unexpectedly"
    if isinstance(error, pickle.UnpicklingError):
        return f"invalid pickle data: {_short(_unpickler_detail(error))}"
    if isinstance(error, zipfile.BadZipFile) or (
        isinstance(error, OSError | RuntimeError) and _starts_with(path, _ZIP_MAGIC)
    ):
        # torch's zip reader says only "[Errno 22] Invalid argument" when the central directory is gone.
        return "truncated or damaged zip archive"
    if isinstance(error, OSError):
        return f"could not read the file: {_short(error.strerror or str(error))}"
    return _short(str(error) or type(error).__name__)


def _size(count: int) -> str:
    """A byte count in words: "2.0 GiB"."""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _archive_entries(file: Path) -> list[zipfile.ZipInfo]:
    """The zip directory of `file` (read by the standard library, which inflates nothing to list it)."""
    try:
        with zipfile.ZipFile(file) as archive:
            return archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError) as error:
        raise CorruptWeightsError(file, "not a readable checkpoint (truncated or damaged zip archive)") from error
    except OSError as error:
        raise CorruptWeightsError(file, f"could not read the file: {_short(error.strerror or str(error))}") from error


def check_torch_archive(path: str | os.PathLike[str]) -> None:
    """Refuse a zip-format torch checkpoint whose directory claims sizes no checkpoint has, before reading it.

    A zip bomb (a small file whose entry inflates to gigabytes) and a directory that claims more than the file
    holds both fail here in a few milliseconds, naming the entry, instead of after torch has inflated it.
    Files that are not zip archives (the legacy pickle format, missing files) are left to the reader.
    """
    file = Path(os.fspath(path))
    if not (file.is_file() and _starts_with(file, _ZIP_MAGIC)):
        return
    file_size = file.stat().st_size
    entries = _archive_entries(file)
    if sum(entry.compress_size for entry in entries) > file_size:
        raise CorruptWeightsError(
            file, "not a readable checkpoint (its zip directory claims more data than the file holds)"
        )
    for entry in entries:
        name, inflated = entry.filename, entry.file_size
        if inflated > max(entry.compress_size * _MAX_INFLATION, _SMALL_ENTRY):
            raise CorruptWeightsError(
                file,
                f"refused to read: its entry {_short(name)} would inflate from {_size(entry.compress_size)} "
                f"to {_size(inflated)}, which no checkpoint does (a zip bomb?)",
            )
        if name.endswith("data.pkl") and inflated > _MAX_PICKLE_BYTES:
            raise CorruptWeightsError(
                file,
                f"refused to read: its index {_short(name)} is {_size(inflated)}, "
                f"above the {_size(_MAX_PICKLE_BYTES)} any checkpoint needs",
            )
    total = sum(entry.file_size for entry in entries)
    if total > _MAX_ARCHIVE_BYTES:
        raise CorruptWeightsError(
            file, f"refused to read: it claims {_size(total)} of data, above the {_size(_MAX_ARCHIVE_BYTES)} limit"
        )


def load_torch_checkpoint(path: str | os.PathLike[str], *, hint: str | None = None) -> dict[str, Any]:
    """Load a `.pth`/`.ckpt` file onto the CPU without ever running code from it.

    Only torch's restricted unpickler is used (`weights_only=True`): tensors, containers and plain
    values load; anything that would import or call a Python global is refused as
    `UnsafeCheckpointError`. `hint` is appended to the message if the file does not exist. A zip archive's
    directory is checked first (`check_torch_archive`), so a zip bomb is refused before anything is inflated.
    """
    file = Path(os.fspath(path))
    check_torch_archive(file)
    # Zip-format files are memory-mapped: a multi-GB checkpoint of which we need one part is then read
    # only where it is used. (torch cannot map the legacy format.)
    mmap = file.is_file() and _starts_with(file, _ZIP_MAGIC)
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise WeightFileMissingError(file, hint) from None
    except safetensors.SafetensorError as error:
        # torch.load hands a file named *.safetensors to the safetensors reader, whose errors are its own.
        raise _safetensors_error(error, file) from error
    except pickle.UnpicklingError as error:
        detail = _unpickler_detail(error)
        if any(marker in detail.lower() for marker in _UNSAFE_MARKERS):
            raise UnsafeCheckpointError(file, _global_name(detail)) from error
        raise CorruptWeightsError(file, f"not a readable checkpoint ({_checkpoint_detail(error, file)})") from error
    except _TORCH_READ_ERRORS as error:
        raise CorruptWeightsError(file, f"not a readable checkpoint ({_checkpoint_detail(error, file)})") from error
    if not isinstance(checkpoint, dict):
        raise CorruptWeightsError(file, f"top level is {type(checkpoint).__name__}, expected a dict")
    for key in checkpoint:
        if not isinstance(key, str):
            raise CorruptWeightsError(file, f"top level has a {type(key).__name__} key {key!r}, expected str keys")
    return checkpoint


# --- safetensors ---------------------------------------------------------------------------------


_HEADER_ERROR_PREFIX: Final = "Error while deserializing header:"


def _safetensors_error(error: BaseException, path: Path) -> CorruptWeightsError:
    """The typed error for a safetensors file the reader rejected.

    The reader checks the header (its length, the JSON, each tensor's dtype, shape and offsets against
    the file) before touching any data; a header that lies about the data is a damaged file, said so.
    """
    detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    if detail.startswith(_HEADER_ERROR_PREFIX):
        reason = detail.removeprefix(_HEADER_ERROR_PREFIX).strip()
        return CorruptWeightsError(
            path, f"not a readable safetensors file (its header does not describe its data: {_short(reason)})"
        )
    return CorruptWeightsError(path, f"not a readable safetensors file ({_short(detail or type(error).__name__)})")


def read_safetensors(
    path: str | os.PathLike[str], *, device: str = "cpu", hint: str | None = None
) -> dict[str, torch.Tensor]:
    """All tensors of a `.safetensors` file, with typed errors instead of the reader's own."""
    file = Path(os.fspath(path))
    try:
        return load_file(file, device=device)
    except FileNotFoundError:
        raise WeightFileMissingError(file, hint) from None
    except _SAFETENSORS_READ_ERRORS as error:
        raise _safetensors_error(error, file) from error


def read_safetensors_metadata(path: str | os.PathLike[str], *, hint: str | None = None) -> dict[str, str]:
    """The free-text header metadata of a `.safetensors` file (empty if it has none), without loading tensors."""
    file = Path(os.fspath(path))
    try:
        with safetensors.safe_open(file, "pt") as handle:
            metadata: dict[str, str] | None = handle.metadata()
    except FileNotFoundError:
        raise WeightFileMissingError(file, hint) from None
    except _SAFETENSORS_READ_ERRORS as error:
        raise _safetensors_error(error, file) from error
    return dict(metadata) if metadata else {}


def write_safetensors_atomic(
    tensors: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write `tensors` as a `.safetensors` file that is either complete or not there at all.

    The data goes to a temporary file beside `path`, is flushed to disk, and is renamed into place;
    on any failure the temporary file is removed and the error re-raised. The result gets the
    permissions a plain `open()` would give it (see `common.atomic_files`).
    """
    with atomic_path(Path(os.fspath(path))) as tmp:
        contiguous = {key: tensor.contiguous() for key, tensor in tensors.items()}
        save_file(contiguous, tmp, metadata=dict(metadata) if metadata is not None else None)


# --- checks --------------------------------------------------------------------------------------


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """The hex SHA-256 of a file, read in `chunk_size` pieces so multi-GB weights never sit in memory."""
    file = Path(os.fspath(path))
    digest = hashlib.sha256()
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    try:
        with file.open("rb", buffering=0) as handle:
            while count := handle.readinto(view):
                digest.update(view[:count])
    except FileNotFoundError:
        raise WeightFileMissingError(file) from None
    return digest.hexdigest()


def _count_non_finite(tensor: torch.Tensor) -> int:
    """How many NaN/inf values `tensor` holds, scanning in slices so the mask stays small."""
    flat = tensor.reshape(-1) if tensor.is_contiguous() else tensor.contiguous().reshape(-1)
    return sum(
        int((~torch.isfinite(flat[start : start + _FINITE_CHUNK])).sum())
        for start in range(0, flat.numel(), _FINITE_CHUNK)
    )


def _all_finite(tensor: torch.Tensor) -> bool:
    """Whether `tensor` is free of NaN/inf; contiguous tensors are scanned in slices to bound memory."""
    if not tensor.is_contiguous() or tensor.numel() <= _FINITE_CHUNK:
        return bool(torch.isfinite(tensor).all())
    flat = tensor.reshape(-1)
    return all(
        bool(torch.isfinite(flat[start : start + _FINITE_CHUNK]).all())
        for start in range(0, flat.numel(), _FINITE_CHUNK)
    )


def check_finite(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Raise `NonFiniteWeightsError` for the first floating-point tensor holding NaN or inf.

    A NaN anywhere in the weights spreads through every activation and the render comes out black
    or as noise; failing at load time names the culprit instead. Integer and bool tensors cannot
    hold NaN and are skipped, as are meta tensors, which have no data.
    """
    for key, tensor in tensors.items():
        if not (tensor.is_floating_point() or tensor.is_complex()) or tensor.is_meta:
            continue
        if not _all_finite(tensor):
            raise NonFiniteWeightsError(path, key, _count_non_finite(tensor))
