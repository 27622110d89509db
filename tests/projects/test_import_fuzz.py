"""Property-based fuzzing of the four importers, through the function the CLI's import command runs,
into a real project file.

Inputs are structured but hostile: a valid sample (import_samples) with a few of its values replaced
by huge integers, floats (NaN, infinities), numbers written as text, lone surrogates, wrong types or
nested garbage, keys deleted or duplicated; then, sometimes, its bytes truncated, flipped or padded;
or random bytes. The property: every import ends in a success or a LayoutFormatError (one line naming
the file), never another exception, and one that fails leaves the project file byte-for-byte as it was.

CI runs a few dozen inputs per importer; `INSTANCE_STUDIO_FUZZ=10000` runs that many per importer
(locally, minutes). No hypothesis database is written: a failure prints its input to reproduce it.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projects.database import Project
from projects.errors import LayoutFormatError
from projects.import_any import read_any
from projects.png_metadata import PNG_SIGNATURE
from projects.scenes import list_scenes, scene_layout
from tests.projects.import_samples import IMPORTERS, Importer, project_bytes, run_import

EXAMPLES = int(os.environ.get("INSTANCE_STUDIO_FUZZ") or 40)

# --- what goes in ----------------------------------------------------------------------------------

_huge_integers = st.builds(lambda sign, digits: sign * 10**digits, st.sampled_from([1, -1]), st.integers(15, 1200))
_awkward_text = st.sampled_from(
    [
        *["\ud800", "a cat \udfff", "\udcff", "NaN", "-Infinity", "1e999", "", " ", "\x00", "\u202e", "..", "C:\\x"],
        *["rectangle", "polygon", "circle", "point", "line", "mask", "box", "scribble", "plms", "demo"],
    ]
)
scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    _huge_integers,
    st.floats(),  # NaN and the infinities too: written as JSON's forbidden NaN / Infinity
    st.sampled_from([0, 1, -1, 2**31, 2**53 + 1, 2**63, 2**64, 1e308, -1e308, 5e-324, -0.0, 0.5]),
    st.booleans(),
    st.none(),
    _awkward_text,
    st.text(max_size=12),
    st.text(st.characters(categories=["Cs", "Cc", "Cf", "Lo", "So"]), max_size=6),
)
garbage = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=16,
)

Path_ = tuple[Any, ...]


def node_paths(data: Any, path: Path_ = ()) -> Iterator[Path_]:
    """The path of every value below the root (containers and scalars)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        yield (*path, key)
        yield from node_paths(value, (*path, key))


@st.composite
def mutated(draw: st.DrawFn, sample: Any) -> Any:
    """`sample` with one to four values replaced, deleted or duplicated."""
    data = copy.deepcopy(sample)
    for _ in range(draw(st.integers(1, 4))):
        paths = list(node_paths(data))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = draw(st.sampled_from(["scalar", "scalar", "garbage", "delete", "duplicate"]))
        if action == "delete":
            del parent[key]
        elif action == "duplicate" and isinstance(parent, list):
            parent[key:key] = [copy.deepcopy(parent[key])] * draw(st.integers(1, 40))
        else:
            parent[key] = draw(scalars if action == "scalar" else garbage)
    return data


@st.composite
def damaged(draw: st.DrawFn, raw: bytes) -> bytes:
    """`raw` truncated, with bytes flipped, inserted or deleted."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        if action == "truncate":
            del data[at:]
        elif action == "flip" and at < len(data):
            data[at] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


@st.composite
def hostile_file(draw: st.DrawFn, importer: Importer) -> bytes:
    shape = draw(st.sampled_from(["values", "values", "values", "values and bytes", "bytes", "random"]))
    if shape == "random":
        head = draw(st.sampled_from([b"", PNG_SIGNATURE, b"{", b"\xef\xbb\xbf"]))
        return head + draw(st.binary(max_size=400))
    raw = importer.encode(draw(mutated(importer.sample))) if "values" in shape else importer.sample_bytes()
    return draw(damaged(raw)) if "bytes" in shape else raw


# --- the property ----------------------------------------------------------------------------------


@pytest.mark.parametrize("importer", IMPORTERS, ids=lambda importer: importer.name)
def test_a_fuzzed_import_succeeds_or_fails_cleanly_and_a_failure_changes_nothing(
    importer: Importer, tmp_path: Path
) -> None:
    project = tmp_path / "fuzz.instproj"
    Project.create(project).close()
    path = tmp_path / f"fuzzed{importer.suffix}"
    outcomes = {"imported": 0, "refused": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(hostile_file(importer))
    def import_once(data: bytes) -> None:
        path.write_bytes(data)
        before = project_bytes(project)
        try:
            run_import(importer.command, project, path)
        except LayoutFormatError as exc:
            outcomes["refused"] += 1
            message = str(exc)
            assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 2000, message
            assert project_bytes(project) == before, "a failed import changed the project file"
        else:
            outcomes["imported"] += 1
        with contextlib.suppress(LayoutFormatError):  # what the window's drop runs: told apart by content
            read_any(path)

    import_once()
    assert outcomes["refused"] > 0
    with Project.open(project) as opened, opened.read() as session:
        for scene in list_scenes(session):  # everything imported reads back
            scene_layout(scene)
