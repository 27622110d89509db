"""Zip-format checkpoints whose directory lies or whose entries inflate to gigabytes (issue 15, item 12).

torch inflates a zip entry whole before unpickling it: a 2 MB `.pth` whose `data.pkl` inflates to 2 GiB
took 4.4 GB of memory before failing. The zip directory is checked before torch reads anything.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest
import torch

from engine import folder_loading, weights_io
from engine.weights_io import CorruptWeightsError, check_torch_archive, load_torch_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20
STORED, DEFLATED = 0, 8


def _zip(entries: list[tuple[str, int, bytes, int, int]], *, claim: int = 0) -> bytes:
    """A zip archive of (name, method, stored bytes, crc, inflated size); `claim` inflates every stored size."""
    out, central = bytearray(), bytearray()
    for name, method, raw, crc, size in entries:
        encoded, offset = name.encode(), len(out)
        sizes = (crc, len(raw) + claim, size + claim * (method == STORED))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, *sizes, len(encoded), 0) + encoded + raw
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, *sizes, len(encoded), 0, 0, 0, 0, 0, offset
            )
            + encoded
        )
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(out), 0)
    return bytes(out + central + end)


def _deflated_zeros(mebibytes: int) -> tuple[bytes, int]:
    """A raw deflate stream of `mebibytes` MiB of zeros and its CRC, built in well under a second for 2 GiB.

    After a full flush the compressor starts afresh, so one compressed MiB repeats byte for byte.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc, zeros = 0, bytes(MiB)
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    return block * mebibytes + compressor.flush(), crc


def zip_bomb(path: Path, mebibytes: int, entry: str = "archive/data.pkl") -> Path:
    """A torch-like checkpoint whose `entry` is deflated zeros inflating to `mebibytes` MiB."""
    raw, crc = _deflated_zeros(mebibytes)
    version = b"3\n"
    path.write_bytes(
        _zip(
            [
                (entry, DEFLATED, raw, crc, mebibytes * MiB),
                ("archive/version", STORED, version, zlib.crc32(version), 2),
            ]
        )
    )
    return path


def _real_checkpoint() -> bytes:
    buffer = io.BytesIO()
    torch.save({"weight": torch.ones(4)}, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("entry", ["archive/data.pkl", "archive/data/0", "model/data.pkl", "archive/version2"])
@pytest.mark.parametrize("mebibytes", [2, 16, 64])
def test_an_entry_that_inflates_far_beyond_its_size_is_refused_before_reading(
    tmp_path: Path, entry: str, mebibytes: int
) -> None:
    bomb = zip_bomb(tmp_path / "bomb.pth", mebibytes, entry)
    assert bomb.stat().st_size < mebibytes * MiB // 100
    with pytest.raises(CorruptWeightsError) as caught:
        load_torch_checkpoint(bomb)
    message = str(caught.value)
    assert message.startswith(f"{bomb}: refused to read") and entry in message and "inflate" in message
    assert "\n" not in message


@pytest.mark.parametrize("claim", [4096, 10 * MiB, 2**31])
def test_a_directory_claiming_more_than_the_file_holds_is_refused(tmp_path: Path, claim: int) -> None:
    pickle_bytes = b"\x80\x02}q\x00."  # an empty dict
    path = tmp_path / "lying.pth"
    path.write_bytes(_zip([("archive/data.pkl", STORED, pickle_bytes, zlib.crc32(pickle_bytes), 6)], claim=claim))
    with pytest.raises(CorruptWeightsError, match="claims more data than the file holds"):
        load_torch_checkpoint(path)


def test_an_oversized_index_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights_io, "_MAX_PICKLE_BYTES", 16)
    path = tmp_path / "real.pth"
    path.write_bytes(_real_checkpoint())
    with pytest.raises(CorruptWeightsError, match=r"its index archive/data\.pkl is .* above"):
        load_torch_checkpoint(path)


def test_real_checkpoints_and_legacy_pickles_pass_the_check(tmp_path: Path) -> None:
    path = tmp_path / "real.pth"
    path.write_bytes(_real_checkpoint())
    check_torch_archive(path)
    assert torch.equal(load_torch_checkpoint(path)["weight"], torch.ones(4))
    legacy = tmp_path / "legacy.pth"
    torch.save({"weight": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    check_torch_archive(legacy)  # not a zip: left to the reader
    assert torch.equal(load_torch_checkpoint(legacy)["weight"], torch.ones(2))


def test_a_bomb_given_as_a_diffusers_bin_is_refused_before_diffusers_reads_it(tmp_path: Path) -> None:
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_bytes(
        (REPO_ROOT / "resources" / "sd15" / "vae" / "config.json").read_bytes()
    )
    bomb = zip_bomb(tmp_path / "vae" / "diffusion_pytorch_model.bin", 64)
    with pytest.raises(CorruptWeightsError, match="inflate"):
        folder_loading.vae_from_folder(tmp_path, bomb)


def test_a_two_gib_bomb_is_refused_within_bounded_memory_and_time(tmp_path: Path) -> None:
    bomb = zip_bomb(tmp_path / "bomb.pth", 2048)
    script = textwrap.dedent(
        """
        import os, resource, sys, time
        from engine.weights_io import CorruptWeightsError, load_torch_checkpoint
        pages = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = pages + int(1.5 * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        start = time.monotonic()
        try:
            load_torch_checkpoint(sys.argv[1])
        except CorruptWeightsError as exc:
            print(f"{time.monotonic() - start:.3f}", exc)
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script, str(bomb)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seconds, message = done.stdout.strip().split(" ", 1)
    assert "would inflate from 2.0 MiB to 2.0 GiB" in message, message
    assert float(seconds) < 2, f"the check itself took {seconds} s"
    assert time.monotonic() - started < 60
