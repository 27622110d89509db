"""Safetensors files whose header lies about their data end in one line naming the file (issue 15, item 13)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import main
from engine.weights_io import CorruptWeightsError, read_safetensors, read_safetensors_metadata

_numbers = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([0, 1, 4, 16, 2**32, 2**63, 2**64]), st.floats(), st.text(max_size=3)
)
_entry = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "XX", ""]),
        "shape": st.lists(_numbers, max_size=3),
        "data_offsets": st.lists(_numbers, min_size=0, max_size=3),
    }
)
_header = st.dictionaries(
    st.sampled_from(["a", "b", "__metadata__"]), st.one_of(_entry, st.none(), _numbers), max_size=3
)


def _file(path: Path, header: Any, data_size: int, claimed: int | None) -> Path:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    length = len(text) if claimed is None else claimed
    path.write_bytes(struct.pack("<Q", length % 2**64) + text + b"\x01" * data_size)
    return path


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.one_of(_header, st.binary(max_size=30)),
    data_size=st.sampled_from([0, 1, 15, 16, 64]),
    claimed=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
)
def test_a_lying_header_is_a_one_line_corrupt_weights_error(
    tmp_path: Path, header: Any, data_size: int, claimed: int | None
) -> None:
    path = _file(tmp_path / "lying.safetensors", header, data_size, claimed)
    for reader in (read_safetensors, read_safetensors_metadata):
        try:
            reader(path)
        except CorruptWeightsError as exc:
            message = str(exc)
            assert message.startswith(f"{path}: not a readable safetensors file (") and "\n" not in message


@pytest.mark.parametrize(
    ("header", "data_size", "claimed"),
    [
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, 16, 10**6),  # length past the end
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1600]}}, 16, None),  # offsets past the end
        (
            {
                "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            },
            16,
            None,
        ),
        ({"a": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}}, 16, None),  # shape vs bytes
        ({"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 16]}}, 16, None),
    ],
)
def test_lying_headers_say_the_header_does_not_describe_the_data(
    tmp_path: Path, header: Any, data_size: int, claimed: int | None
) -> None:
    path = _file(tmp_path / "lying.safetensors", header, data_size, claimed)
    with pytest.raises(CorruptWeightsError, match="its header does not describe its data"):
        read_safetensors(path)


def test_models_convert_reports_a_lying_safetensors_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = _file(
        tmp_path / "lying.safetensors", {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 1600]}}, 16, None
    )
    assert main.main(["models", "convert", str(path), "--out", str(tmp_path / "out.safetensors")]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
