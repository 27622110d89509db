"""Weight files: hostile pickles never run, broken files fail with one typed line, writes are atomic."""

from __future__ import annotations

import builtins
import hashlib
import os
import pathlib
import pickle
import re
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

from engine import weights_io
from engine.weights_io import (
    CorruptWeightsError,
    NonFiniteWeightsError,
    UnsafeCheckpointError,
    WeightFileError,
    WeightFileMissingError,
    check_finite,
    load_torch_checkpoint,
    read_safetensors,
    read_safetensors_metadata,
    sha256_file,
    write_safetensors_atomic,
)

# --- hostile pickles -----------------------------------------------------------------------------


class ExecPayload:
    """Unpickles as `exec("open(canary, 'w').close()")`: code from the file, run at load time."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.exec, (f"open({str(self.canary)!r}, 'w').close()",))


class TouchPayload:
    """Unpickles as `pathlib.Path.touch(canary)` (pickled as `getattr(PosixPath, 'touch')`)."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.canary,))


class SystemPayload:
    """Unpickles as `os.system("touch canary")`: torch blocks the whole `os`/`posix` module."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch '{self.canary}'",))


# Each payload with the global torch should name when it refuses it.
PAYLOADS: list[tuple[type[Any], str]] = [
    (ExecPayload, "builtins.exec"),
    (TouchPayload, "builtins.getattr"),
    (SystemPayload, f"{os.system.__module__}.system"),
]


def save_torch(obj: object, path: Path) -> None:
    torch.save(obj, path)


def save_torch_legacy(obj: object, path: Path) -> None:
    torch.save(obj, path, _use_new_zipfile_serialization=False)


def save_raw_pickle(obj: object, path: Path) -> None:
    # Protocol 2 is what torch's legacy reader understands; newer protocols fail on opcodes first.
    with path.open("wb") as handle:
        pickle.dump(obj, handle, protocol=2)


WRITERS: list[Callable[[object, Path], None]] = [save_torch, save_torch_legacy, save_raw_pickle]


@pytest.mark.parametrize("writer", WRITERS, ids=lambda writer: writer.__name__)
@pytest.mark.parametrize(("payload", "global_name"), PAYLOADS, ids=[p[0].__name__ for p in PAYLOADS])
def test_a_hostile_checkpoint_is_refused_without_running_its_code(
    tmp_path: Path, writer: Callable[[object, Path], None], payload: type[Any], global_name: str
) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "evil.pth"
    # A plain pickle of a tensor needs torch globals the safe loader refuses, so that one holds lists.
    weight = [[1.0, 1.0]] if writer is save_raw_pickle else torch.ones(2, 2)
    writer({"model": {"weight": weight}, "evil": payload(canary)}, path)
    assert not canary.exists()

    with pytest.raises(UnsafeCheckpointError) as caught:
        load_torch_checkpoint(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: ") and global_name in message and "\n" not in message
    assert caught.value.global_name == global_name and caught.value.path == path
    assert not canary.exists(), "loading the checkpoint ran code from it"


def test_the_canary_payload_really_runs_under_an_unrestricted_unpickler(tmp_path: Path) -> None:
    """The hostile-file tests prove something only if their payloads do fire when given the chance."""
    for payload, _ in PAYLOADS:
        canary = tmp_path / f"canary-{payload.__name__}"
        pickle.loads(pickle.dumps(payload(canary)))  # the unsafe path, on a file we just made
        assert canary.exists(), payload.__name__


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_modern_protocol_raw_pickle_is_refused_without_running_its_code(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    path = tmp_path / "evil.pkl"
    with path.open("wb") as handle:
        pickle.dump({"evil": ExecPayload(canary)}, handle, protocol=pickle.HIGHEST_PROTOCOL)

    with pytest.raises(WeightFileError, match=f"^{re.escape(str(path))}: "):
        load_torch_checkpoint(path)
    assert not canary.exists()


# --- good and broken checkpoints -----------------------------------------------------------------


def sample_checkpoint() -> dict[str, Any]:
    torch.manual_seed(0)
    return {
        "model": {"linear.weight": torch.randn(4, 3), "linear.bias": torch.zeros(4)},
        "ema": {"linear.weight": torch.randn(4, 3, dtype=torch.float16), "steps": torch.tensor([7])},
        "epoch": 12,
        "lr": 1e-4,
        "name": "instance-diffusion",
        "milestones": [1, 2, 3],
        "flags": {"ema": True, "note": None},
    }


def assert_same(actual: object, expected: object) -> None:
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor) and actual.dtype == expected.dtype
        assert torch.equal(actual, expected)
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys()
        for key, value in expected.items():
            assert_same(actual[key], value)
    else:
        assert actual == expected and type(actual) is type(expected)


@pytest.mark.parametrize("writer", [save_torch, save_torch_legacy], ids=lambda writer: writer.__name__)
def test_a_good_checkpoint_loads_as_saved(tmp_path: Path, writer: Callable[[object, Path], None]) -> None:
    path = tmp_path / "good.pth"
    writer(sample_checkpoint(), path)
    assert_same(load_torch_checkpoint(str(path)), sample_checkpoint())


@pytest.mark.parametrize("writer", [save_torch, save_torch_legacy], ids=lambda writer: writer.__name__)
def test_a_truncated_checkpoint_is_corrupt(tmp_path: Path, writer: Callable[[object, Path], None]) -> None:
    path = tmp_path / "half.pth"
    writer(sample_checkpoint(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(CorruptWeightsError, match=f"^{re.escape(str(path))}: not a readable checkpoint \\(") as caught:
        load_torch_checkpoint(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "blob",
    [os.urandom(4096), b"", b"\x80\x02" + bytes(range(256)), b"PK\x03\x04" + b"\0" * 64],
    ids=["random", "empty", "pickle-junk", "zip-magic-only"],
)
def test_garbage_is_corrupt(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "garbage.pth"
    path.write_bytes(blob)
    with pytest.raises(CorruptWeightsError, match=f"^{re.escape(str(path))}: not a readable checkpoint \\(") as caught:
        load_torch_checkpoint(path)
    assert "\n" not in str(caught.value)


def test_a_checkpoint_that_is_not_a_dict_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([torch.ones(2), 3], path)
    with pytest.raises(CorruptWeightsError, match=f"^{re.escape(str(path))}: top level is list, expected a dict$"):
        load_torch_checkpoint(path)


def test_a_checkpoint_with_non_string_keys_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "int-keys.pth"
    torch.save({0: torch.ones(2)}, path)
    with pytest.raises(CorruptWeightsError, match="int key 0"):
        load_torch_checkpoint(path)


def test_a_missing_checkpoint_names_where_it_was_expected_and_the_hint(tmp_path: Path) -> None:
    path = tmp_path / "models" / "instancediffusion.pth"
    with pytest.raises(WeightFileMissingError) as caught:
        load_torch_checkpoint(path, hint="download it with scripts/fetch_weights.py")
    assert str(caught.value) == (
        f"{path}: file not found (expected at {path}); download it with scripts/fetch_weights.py"
    )
    assert caught.value.path == path and caught.value.hint is not None


def test_a_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CorruptWeightsError, match="could not read the file"):
        load_torch_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "error",
    [
        UnsafeCheckpointError(Path("/w/x.pth"), "builtins.exec"),
        CorruptWeightsError(Path("/w/x.pth"), "not a readable checkpoint\n(truncated)"),
        WeightFileMissingError(Path("/w/x.pth"), "get it"),
        NonFiniteWeightsError(Path("/w/x.pth"), "a.weight", 3),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_are_one_line_and_survive_pickling(error: WeightFileError) -> None:
    assert str(error).startswith("/w/x.pth: ") and "\n" not in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and vars(copy) == vars(error)


# --- safetensors ---------------------------------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_safetensors_round_trip_with_metadata(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "unet.safetensors"
    tensors = {
        "a.weight": torch.randn(3, 4),
        "a.bias": torch.arange(5, dtype=torch.int64),
        "b.transposed": torch.randn(4, 6).t(),  # not contiguous: must still be written
        "c.half": torch.ones(2, dtype=torch.bfloat16),
    }
    write_safetensors_atomic(tensors, path, metadata={"format": "pt", "source": "test"})

    loaded = read_safetensors(path)
    assert loaded.keys() == tensors.keys()
    for key, tensor in tensors.items():
        assert torch.equal(loaded[key], tensor) and loaded[key].dtype == tensor.dtype
    assert read_safetensors_metadata(str(path)) == {"format": "pt", "source": "test"}
    assert path.stat().st_mode & 0o777 == 0o644
    assert leftovers(tmp_path) == []


def test_a_file_without_metadata_has_empty_metadata(tmp_path: Path) -> None:
    path = tmp_path / "plain.safetensors"
    write_safetensors_atomic({"x": torch.ones(1)}, path)
    assert read_safetensors_metadata(path) == {}


def test_writing_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    write_safetensors_atomic({"x": torch.zeros(2)}, path)
    write_safetensors_atomic({"y": torch.ones(3)}, path)
    assert list(read_safetensors(path)) == ["y"]
    assert leftovers(tmp_path) == []


def test_a_failed_write_leaves_neither_target_nor_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(tensors: object, filename: str | os.PathLike[str], metadata: object = None) -> None:
        Path(filename).write_bytes(b"partial")  # the failure comes mid-write
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(weights_io, "save_file", full_disk)
    path = tmp_path / "vae.safetensors"
    with pytest.raises(OSError, match="No space left"):
        write_safetensors_atomic({"x": torch.ones(2)}, path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "vae.safetensors"
    write_safetensors_atomic({"old": torch.ones(2)}, path)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(weights_io, "save_file", broken)
    with pytest.raises(OSError, match="Input/output"):
        write_safetensors_atomic({"new": torch.ones(2)}, path)
    monkeypatch.undo()
    assert list(read_safetensors(path)) == ["old"]
    assert leftovers(tmp_path) == []


def test_a_truncated_safetensors_file_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "half.safetensors"
    safetensors.torch.save_file({"x": torch.randn(64, 64)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    for reader in (read_safetensors, read_safetensors_metadata):
        with pytest.raises(CorruptWeightsError, match=f"^{re.escape(str(path))}: not a readable safetensors file \\("):
            reader(path)


@pytest.mark.parametrize(
    "blob",
    [
        struct.pack("<Q", 1 << 60) + b"{}" + b"\0" * 32,  # claims an exabyte of header
        struct.pack("<Q", 12) + b"{not json!!}",
        b"abc",
        b"",
    ],
    ids=["huge-header", "bad-json", "tiny", "empty"],
)
def test_a_garbage_safetensors_header_is_corrupt(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(blob)
    for reader in (read_safetensors, read_safetensors_metadata):
        with pytest.raises(
            CorruptWeightsError, match=f"^{re.escape(str(path))}: not a readable safetensors file \\("
        ) as caught:
            reader(path)
        assert "\n" not in str(caught.value)


def test_a_missing_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.safetensors"
    with pytest.raises(WeightFileMissingError, match=r"; see the README$"):
        read_safetensors(path, hint="see the README")
    with pytest.raises(WeightFileMissingError, match=f"^{re.escape(str(path))}: file not found"):
        read_safetensors_metadata(path)


# --- hashing and finiteness ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1000, 3 * 1024 + 7])
def test_sha256_file_matches_hashlib(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path, chunk_size=1024) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


def test_sha256_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightFileMissingError):
        sha256_file(tmp_path / "nope.bin")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_check_finite_names_the_first_bad_tensor(tmp_path: Path, bad: float) -> None:
    broken = torch.zeros(4, 4)
    broken[0, 1] = broken[2, 3] = broken[3, 0] = bad
    tensors = {"ok.weight": torch.ones(3), "linear.weight": broken, "later.weight": torch.full((2,), bad)}
    path = tmp_path / "model.safetensors"

    with pytest.raises(NonFiniteWeightsError) as caught:
        check_finite(tensors, path)
    assert str(caught.value) == f"{path}: tensor 'linear.weight' has 3 NaN/inf values"
    assert caught.value.key == "linear.weight" and caught.value.count == 3


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.complex64])
def test_check_finite_covers_every_floating_dtype(dtype: torch.dtype) -> None:
    tensor = torch.zeros(5, dtype=dtype)
    tensor[4] = float("nan")
    with pytest.raises(NonFiniteWeightsError, match=r"has 1 NaN/inf value$"):
        check_finite({"t": tensor}, "x.pth")


def test_check_finite_scans_large_and_strided_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights_io, "_FINITE_CHUNK", 7)  # many slices on a small tensor
    big = torch.zeros(10, 10)
    big[9, 9] = float("inf")
    big[0, 0] = float("nan")
    with pytest.raises(NonFiniteWeightsError, match="has 2 NaN/inf values"):
        check_finite({"big": big}, "x.pth")
    with pytest.raises(NonFiniteWeightsError, match="has 2 NaN/inf values"):
        check_finite({"big.t": big.t()}, "x.pth")
    check_finite({"fine": torch.ones(10, 10), "fine.t": torch.ones(10, 10).t()}, "x.pth")


def test_check_finite_ignores_integers_and_passes_finite_tensors() -> None:
    check_finite(
        {
            "steps": torch.tensor([1, 2, 3]),
            "mask": torch.tensor([True, False]),
            "w": torch.randn(8, 8),
            "empty": torch.empty(0),
            "meta": torch.full((4,), float("nan"), device="meta"),
        },
        "x.pth",
    )


@pytest.mark.parametrize(("zip_format", "mapped"), [(True, True), (False, False)])
def test_zip_checkpoints_are_memory_mapped_not_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, zip_format: bool, mapped: bool
) -> None:
    """A multi-GB checkpoint of which the converter needs one part must not be read whole (torch cannot
    map the legacy format, so that one is read normally)."""
    path = tmp_path / "big.pth"
    torch.save({"model": {"w": torch.ones(64, 64)}}, path, _use_new_zipfile_serialization=zip_format)
    calls: list[bool] = []
    real_load = torch.load

    def spying_load(*args: Any, **kwargs: Any) -> Any:
        calls.append(bool(kwargs.get("mmap")))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spying_load)
    assert torch.equal(load_torch_checkpoint(path)["model"]["w"], torch.ones(64, 64))
    assert calls == [mapped]
