import json
import os
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from projects.errors import LayoutFormatError
from projects.import_geometry import GeometryError, coco_rle, normalise_points, thin
from projects.safe_input import (
    MAX_JSON_BYTES,
    MAX_NAME_BYTES,
    check_depth,
    file_stem,
    fit_canvas,
    parse_json,
    read_bytes,
    read_head,
    read_json,
    sanitise_name,
    scene_name_from,
    shown,
)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- JSON ----------------------------------------------------------------------------------------


def test_reads_plain_json_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path, "plain.json", b'\xef\xbb\xbf{"a": [1, 2.5, "x"]}')
    assert read_json(path) == {"a": [1, 2.5, "x"]}


def test_json_nested_past_the_interpreter_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "deep.json", b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(LayoutFormatError) as info:
        read_json(path)
    assert str(path) in str(info.value) and "nested too deeply" in str(info.value)


def test_json_nested_past_the_limit_is_refused_even_when_python_could_parse_it(tmp_path: Path) -> None:
    path = write(tmp_path, "deep.json", b"[" * 100 + b"]" * 100)
    with pytest.raises(LayoutFormatError, match="nested too deeply"):
        read_json(path)
    assert read_json(path, max_depth=100) is not None
    check_depth({"a": [[{"b": []}]]}, "x", max_depth=5)
    with pytest.raises(LayoutFormatError, match=r"^x: .*more than 4 levels"):
        check_depth({"a": [[{"b": []}]]}, "x", max_depth=4)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(MAX_JSON_BYTES + 1)  # sparse: takes no disk space
    with pytest.raises(LayoutFormatError) as info:
        read_json(path)
    message = str(info.value)
    assert str(path) in message and f"{MAX_JSON_BYTES + 1:,} bytes" in message
    small = write(tmp_path, "small.json", b"[1, 2, 3]")
    with pytest.raises(LayoutFormatError, match="file is 9 bytes; at most 8"):
        read_json(small, max_bytes=8)


def test_invalid_utf8_is_refused_with_its_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "latin1.json", b'{\n  "name": "caf\xe9"\n}')
    with pytest.raises(LayoutFormatError) as info:
        read_json(path)
    assert str(info.value) == f"{path}: not UTF-8 text: byte 0xe9 at line 2, column 15"


def test_malformed_json_names_the_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.json", b'{\n  "a": [1,\n}')
    with pytest.raises(LayoutFormatError) as info:
        read_json(path)
    assert str(info.value).startswith(f"{path}: not valid JSON at line 3, column 1:")


@pytest.mark.parametrize("text", [b'{"a": NaN}', b"[Infinity]", b"1" * 5000])
def test_numbers_json_does_not_allow_are_refused(text: bytes) -> None:
    with pytest.raises(LayoutFormatError, match=r"^f\.json: not valid JSON"):
        parse_json(text, "f.json")


def test_a_missing_file_or_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LayoutFormatError, match="cannot be read"):
        read_json(tmp_path / "nope.json")
    with pytest.raises(LayoutFormatError, match=r"not a regular file \(a folder\)"):
        read_json(tmp_path)


def test_the_bounded_reader_stops_at_its_limit_and_reads_heads(tmp_path: Path) -> None:
    path = write(tmp_path, "ten.bin", b"0123456789")
    assert read_bytes(path, 10) == b"0123456789"
    assert read_head(path, 4) == b"0123" and read_head(path, 100) == b"0123456789"
    with pytest.raises(LayoutFormatError, match=r"file is 10 bytes; images are at most 9$"):
        read_bytes(path, 9, kind="images")


def test_a_non_utf8_file_name_is_shown_escaped_and_named_with_a_replacement_character(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9 \xff.json")
    assert shown(str(tmp_path / name)).endswith("caf\\xe9 \\xff.json")
    assert shown("plain ünïcode") == "plain ünïcode" and shown("\ud800") == "\\ud800"
    assert scene_name_from(tmp_path / name, "x") == "caf\ufffd \ufffd"
    with pytest.raises(LayoutFormatError, match=r"caf\\xe9 \\xff\.json: cannot be read: No such file") as info:
        read_json(tmp_path / name)
    assert info.value.source.encode("utf-8")  # printable, loggable, storable


# --- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("kitchen 01", "kitchen 01"),
        ("../../evil", "evil"),
        ("..\\..\\evil", "evil"),
        ("C:\\x", "C__x"),
        ("/etc/passwd", "etc_passwd"),
        ("a\x00b\nc\td", "ab c d"),
        ("right\u202eleft", "rightleft"),
        ("..", "fallback"),
        ("", "fallback"),
        ("   ", "fallback"),
        ("a....b", "a.b"),
        ("a \x00 b", "a b"),
        ("CON", "CON_"),
        ("nul.txt", "nul.txt_"),
        ("--rf -", "rf"),
        ("cafe\u0301", "caf\u00e9"),
    ],
)
def test_sanitise_name(text: str, expected: str) -> None:
    assert sanitise_name(text, "fallback") == expected


def test_a_file_name_has_underscores_for_spaces_and_a_byte_limit() -> None:
    assert sanitise_name(" a  b\tc\n", "fallback", space="_") == "a_b_c"
    cut = sanitise_name("\u00e9" * 500, "fallback", max_bytes=81)
    assert cut == "\u00e9" * 40  # cut at a byte limit, never inside a character


def test_sanitised_names_are_never_paths_and_are_capped() -> None:
    for text in ("../../evil", "C:\\x", "\\\\server\\share", "a/../../b", "x" * 1000, ".hidden"):
        name = sanitise_name(text, "fallback")
        assert not any(c in name for c in "/\\:") and ".." not in name
        assert not name.startswith(".") and 0 < len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert sanitise_name(None, "fb") == "fb"
    assert sanitise_name(42, "fb") == "fb"


@pytest.mark.parametrize(
    ("file_name", "stem"),
    [
        ("COCO_val2014_000000000042.jpg", "COCO_val2014_000000000042"),
        ("../../evil.jpg", "evil"),
        ("C:\\x\\y.png", "y"),
        ("C:\\x", "x"),
        ("photo.v2.jpeg", "photo.v2"),
        ("noextension", "noextension"),
        ("..", ".."),
    ],
)
def test_file_stem_is_string_work_on_any_separator(file_name: str, stem: str) -> None:
    assert file_stem(file_name) == stem


# --- sizes and geometry ---------------------------------------------------------------------------


def test_fit_canvas() -> None:
    assert fit_canvas(640, 480) == (640, 480, None)
    assert fit_canvas(640, 427) == (640, 424, None)  # rounding only: silent
    width, height, note = fit_canvas(5000, 3000)
    assert (width, height) == (4096, 2456) and note is not None and "5000x3000" in note
    assert fit_canvas(32, 32)[:2] == (64, 64)


def test_points_near_the_edge_are_clipped_and_far_ones_refused() -> None:
    assert normalise_points([(0.0, 0.0), (101.0, -1.5), (50.0, 25.0)], 100, 50, "p") == (
        (0.0, 0.0),
        (1.0, 0.0),
        (0.5, 0.5),
    )
    with pytest.raises(GeometryError, match=r"annotation 7: point \(5000, 10\) lies outside the 100x50 image"):
        normalise_points([(5000.0, 10.0)], 100, 50, "annotation 7")


def test_thin_keeps_the_ends() -> None:
    points = [(i / 99, 0.0) for i in range(100)]
    thinned = thin(points, 10)
    assert len(thinned) == 10 and thinned[0] == points[0] and thinned[-1] == points[-1]
    assert thin(points[:5], 10) == tuple(points[:5])


def _encoded(bitmap: np.ndarray) -> dict[str, object]:
    rle = coco_mask.encode(np.asfortranarray(bitmap.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def test_coco_rle_accepts_compressed_and_uncompressed_masks() -> None:
    bitmap = np.zeros((6, 4), dtype=np.uint8)
    bitmap[1:3, 1:4] = 1
    np.testing.assert_array_equal(coco_rle(_encoded(bitmap), 4, 6, "a").decode(), bitmap)
    runs = [6 + 1, 2, 4, 2, 4, 2, 3]  # column-major: 7 zeros, then columns 1-3 have rows 1-2 set
    assert sum(runs) == 24
    np.testing.assert_array_equal(coco_rle({"size": [6, 4], "counts": runs}, 4, 6, "a").decode(), bitmap)


@pytest.mark.parametrize(
    ("rle", "reason"),
    [
        ({"size": [5, 4], "counts": "0"}, "RLE size 5x4 does not match the 6x4 image"),
        ({"size": [6, 4], "counts": [1, 2, 3]}, "run lengths do not add up"),
        ({"size": [6, 4], "counts": [-1, 25]}, "run lengths do not add up"),
        ({"size": [6, 4], "counts": "Pb`n0"}, "does not decode"),
        ({"size": [6, 4], "counts": "~~~"}, "outside COCO's alphabet"),
        ({"size": [6, 4], "counts": 12}, "counts must be"),
        ({"size": "6x4", "counts": "0"}, "size must be"),
        ([1, 2], "must be a COCO RLE object"),
    ],
)
def test_coco_rle_refuses_masks_that_do_not_fit(rle: object, reason: str) -> None:
    with pytest.raises(GeometryError, match=f"^annotation 9\\b.*{reason}"):
        coco_rle(rle, 4, 6, "annotation 9")


def test_json_written_by_json_dumps_round_trips(tmp_path: Path) -> None:
    data = {"images": [{"id": 1, "file_name": "a.jpg"}], "nested": [[[[1]]]]}
    path = write(tmp_path, "x.json", json.dumps(data).encode())
    assert read_json(path) == data
