"""Classes of hostile input, each tried on every importer: numbers no float holds, text that is not
Unicode, files that are not files. Each ends in a success or a LayoutFormatError that names the file,
and a failed import leaves the project file as it was. (Random mixtures of these: test_import_fuzz.)"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.request import MaskRLE, RenderRequest, RequestValidationError
from engine.validation import finite_number, text_problem
from projects.database import Project
from projects.errors import LayoutFormatError
from projects.import_any import read_any
from projects.import_coco import parse_coco
from projects.import_labelme import parse_labelme
from projects.safe_input import number
from projects.scenes import list_scenes
from tests.conftest import REPO_ROOT
from tests.projects.import_samples import IMPORTERS, REQUEST, Importer, project_bytes, request_png, run_import

Path_ = tuple[Any, ...]


def leaves(data: Any, path: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    """Every (path, value) of the scalars in a JSON tree."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from leaves(value, (*path, index))
    else:
        yield path, data


def failure(call: Callable[[], object]) -> LayoutFormatError | None:
    """The app's error that `call` raised, or None when it succeeded (any other exception propagates)."""
    try:
        call()
    except LayoutFormatError as exc:
        return exc
    return None


def replaced(data: Any, path: Path_, value: Any) -> Any:
    copied = copy.deepcopy(data)
    node = copied
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copied


def variants(importer: Importer, kind: type | tuple[type, ...], values: list[Any]) -> Iterator[tuple[str, bytes]]:
    """The sample with one leaf of type `kind` replaced by each of `values`, as file bytes."""
    for path, leaf in leaves(importer.sample):
        if isinstance(leaf, kind) and not isinstance(leaf, bool):
            for value in values:
                yield (
                    f"{importer.name} {'.'.join(map(str, path))} = {value!r:.20}",
                    importer.encode(replaced(importer.sample, path, value)),
                )


# --- 1. numbers ------------------------------------------------------------------------------------

HUGE_NUMBERS = [10**400, -(10**400), 10**20, 2**64, 1e308, -1e308, 5e-324]


@pytest.mark.parametrize(
    "value",
    [*HUGE_NUMBERS, 10**4000, float("nan"), float("inf"), -float("inf"), True, "1", None, [1]],
)
def test_the_shared_number_check_never_raises(value: object) -> None:
    checked = finite_number(value)
    assert checked is None or abs(checked) <= 1e15
    assert number(value) == checked


def test_the_number_check_keeps_ordinary_numbers_and_honours_its_range() -> None:
    assert finite_number(3) == 3.0 and isinstance(finite_number(3), float)
    assert finite_number(-2.5) == -2.5
    assert finite_number(10**15) == 1e15 and finite_number(10**15 + 1) is None
    assert finite_number(5, low=0, high=4) is None and finite_number(4, low=0, high=4) == 4.0


@pytest.mark.parametrize("importer", IMPORTERS, ids=lambda i: i.name)
def test_numbers_no_float_holds_end_in_a_layout_error_in_every_importer(importer: Importer, tmp_path: Path) -> None:
    cases = list(variants(importer, (int, float), HUGE_NUMBERS))
    assert len(cases) > 20
    for label, data in cases:
        path = tmp_path / f"scene{importer.suffix}"
        path.write_bytes(data)
        error = failure(lambda: read_any(path))  # noqa: B023 (called at once)
        if error is not None:
            assert str(error).startswith(f"{path}: "), label
            assert len(str(error)) < 400 and "\n" not in str(error), label


def test_a_request_with_a_huge_number_is_a_validation_error() -> None:
    data = json.loads(RenderRequest("a cat").to_json())
    for field in ("guidance", "alpha", "mis", "width", "seed", "steps"):
        for value in HUGE_NUMBERS[:-1]:  # the last is a valid (tiny) guidance, alpha or mis
            with pytest.raises(RequestValidationError, match=field):
                RenderRequest.from_dict({**data, field: value})


# --- 2. text ---------------------------------------------------------------------------------------

BAD_TEXT = ["\ud800", "a cat \udfff", "\udcff"]


@pytest.mark.parametrize("text", ["\ud800", "x\udc80y", "\udfff" * 3])
def test_the_shared_text_check_names_a_lone_surrogate(text: str) -> None:
    problem = text_problem(text)
    assert problem is not None and "U+D" in problem
    assert text_problem("a cat 🐈 ünïcode \x00") is None


@pytest.mark.parametrize("importer", IMPORTERS, ids=lambda i: i.name)
def test_text_that_is_not_unicode_never_reaches_the_project(importer: Importer, tmp_path: Path) -> None:
    project = tmp_path / "p.instproj"
    Project.create(project).close()
    cases = list(variants(importer, str, ["\ud800", "a cat \udfff"]))
    assert len(cases) >= 8
    imported = 0
    for label, data in cases:
        path = tmp_path / f"scene{importer.suffix}"
        path.write_bytes(data)
        before = project_bytes(project)
        error = failure(lambda: run_import(importer.command, project, path))  # noqa: B023 (called at once)
        if error is None:
            imported += 1
        else:
            assert project_bytes(project) == before, label
            assert "surrogate" in str(error) or "not one of" in str(error), label
    with Project.open(project) as opened, opened.read() as session:
        assert len(list_scenes(session)) >= imported


def test_a_request_with_a_lone_surrogate_is_a_validation_error() -> None:
    data = json.loads(RenderRequest("a cat").to_json())
    for field in ("prompt", "negative_prompt", "model_id"):
        with pytest.raises(RequestValidationError, match=rf"{field}.*surrogate"):
            RenderRequest.from_dict({**data, field: "a \ud800"})
    with pytest.raises(RequestValidationError, match="surrogate"):
        RenderRequest("a \udfff")


def test_a_caption_given_on_the_command_line_is_checked_too() -> None:
    data = {"imageWidth": 10, "imageHeight": 10, "shapes": [{"label": "a", "points": [[1, 1], [5, 5], [1, 5]]}]}
    with pytest.raises(LayoutFormatError, match=r"caption.*surrogate"):
        parse_labelme(data, "x.json", "x", caption="\udcff")


# --- 3. files that are not files -------------------------------------------------------------------

_SPECIAL_FILES = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, 1536 * 2**20))
    from projects.errors import LayoutFormatError
    from projects.import_any import read_any
    from projects.import_coco import read_coco, read_coco_captions
    from projects.import_labelme import read_labelme
    from projects.import_png import scene_from_png
    from projects.official_json import read_official_json

    def timeout(*_):
        raise TimeoutError("blocked")

    signal.signal(signal.SIGALRM, timeout)
    folder = Path(sys.argv[1])
    readers = [read_official_json, read_coco, read_coco_captions, read_labelme, scene_from_png, read_any]

    def attempt(reader, path):
        signal.alarm(3)
        try:
            reader(path)
            return "read"
        except LayoutFormatError as exc:
            return exc.problem
        except BaseException as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            signal.alarm(0)

    results = {}
    for special in ("zero", "urandom", "fifo", "folder"):
        for reader in readers:
            try:
                outcome = attempt(reader, folder / special)
            except TimeoutError:
                outcome = "TimeoutError (late)"
            results[f"{special} {reader.__name__}"] = outcome
    print(json.dumps(results))
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="devices, FIFOs and symlinks as on POSIX")
def test_devices_fifos_and_folders_are_refused_by_every_reader_without_reading_them(tmp_path: Path) -> None:
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "urandom").symlink_to("/dev/urandom")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _SPECIAL_FILES, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    wrong = {case: outcome for case, outcome in results.items() if "not a regular file" not in outcome}
    assert not wrong


@pytest.mark.parametrize("size", [0, None, "4x4", [4], [4, 4, 4], {}])
def test_a_mask_whose_size_is_not_two_numbers_is_a_validation_error(size: object) -> None:
    """Found by the fuzz test: a stored request whose mask size was 0 raised a bare ValueError."""
    with pytest.raises(RequestValidationError, match=r"mask\.size"):
        MaskRLE.from_dict({"size": size, "counts": "088"})


@pytest.mark.parametrize("key", ["x" * 100_000, 10**1000], ids=["long text", "huge integer"])
def test_messages_quote_only_a_little_of_a_hostile_value(key: object) -> None:
    image = {"id": key, "width": 4, "height": 4}
    category = {"id": key, "name": "cat"}
    for data in (
        {"images": [image, image], "annotations": [], "categories": []},
        {"images": [{"id": key}], "annotations": [], "categories": []},
        {"images": [], "annotations": [], "categories": [category, category]},
    ):
        with pytest.raises(LayoutFormatError) as info:
            parse_coco(data, "c.json")
        assert len(str(info.value)) < 200


@pytest.mark.skipif(sys.platform == "win32", reason="file names are bytes on POSIX only")
@pytest.mark.parametrize("importer", IMPORTERS, ids=lambda i: i.name)
def test_an_error_names_a_non_utf8_file_printably(importer: Importer, tmp_path: Path) -> None:
    data = copy.deepcopy(importer.sample)
    if importer.name == "png":
        data["instances"][4]["mask"]["counts"] = "1"  # valid RLE text that does not decode: refused late
    else:
        del data[{"official": "annos", "coco": "images", "labelme": "shapes"}[importer.name]]  # needed
    path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/bad \xff" + importer.suffix.encode()))
    path.write_bytes(importer.encode(data))
    with pytest.raises(LayoutFormatError, match=r"bad \\xff") as info:
        run_import(importer.command, tmp_path / "unused.instproj", path)
    assert str(info.value).encode("utf-8")


def test_a_stored_request_with_many_problems_is_refused_in_one_short_line(tmp_path: Path) -> None:
    """Found by the fuzz run: 30 broken instances made a 3,000-character message."""
    data = copy.deepcopy(REQUEST)
    data["instances"] = [{"caption": "a dog", "kind": "point", "point": [-10, 0.7]}] * 30
    path = tmp_path / "many.png"
    path.write_bytes(request_png(data))
    with pytest.raises(LayoutFormatError, match=r"; and 27 more$") as info:
        read_any(path)
    assert len(str(info.value)) < 500


@pytest.mark.parametrize("key", ["\n", "a\udfffb", "k" * 10_000])
def test_an_unknown_key_is_named_in_one_short_printable_line(key: str, tmp_path: Path) -> None:
    """Found by the fuzz run: a stored request with a key "\\n" made a message of two lines."""
    data = copy.deepcopy(REQUEST)
    data["instances"][0][key] = None
    data.update({f"extra {n}": n for n in range(10)})
    path = tmp_path / "keys.png"
    path.write_bytes(request_png(data))
    with pytest.raises(LayoutFormatError, match="unknown fields") as info:
        read_any(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 500 and message.encode("utf-8")
    assert "and 5 more" in message
