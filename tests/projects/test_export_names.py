"""Export name templates are user text: a format spec must not make a huge string (issue 15, item 15)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projects.export_errors import ExportError
from projects.export_names import MAX_FORMAT_NUMBER, MAX_STEM_BYTES, NameAllocator, check_template

REPO_ROOT = Path(__file__).resolve().parents[2]
FIELDS = ("project", "scene", "seed", "index", "date")


def _stem(template: str, seed: int = 3_000_000_000) -> str:
    names = NameAllocator(template, "project")
    return names.stem(
        scene_name="scene", scene_id=1, seed=seed, index=7, created=dt.datetime(2024, 1, 2, 3, 4, 5), render_id=9
    )


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ("{seed:>3000000000}", "seed"),
        ("{seed:>50000000}", "seed"),
        ("{scene:.100000000}", "scene"),
        ("{index:0100}", "index"),
        ("{project:x<65}", "project"),
        ("{date:^9" + "9" * 400 + "}", "date"),
        ("{seed:,.999999999f}", "seed"),
        ("{index:>{seed}}", "index"),  # the width would come from the seed
        ("{seed:{index}{index}}", "seed"),
    ],
)
def test_a_huge_or_nested_format_spec_is_refused_naming_the_field(template: str, field: str) -> None:
    with pytest.raises(ExportError) as caught:
        check_template(template)
    message = str(caught.value)
    assert f"{{{field}" in message and "\n" not in message and len(message) < 300


def test_a_huge_template_is_refused() -> None:
    with pytest.raises(ExportError, match="characters long"):
        check_template("{scene}" * 10_000)


@pytest.mark.parametrize("template", ["{seed:>64}", "{index:04d}", "{seed:x}", "{scene:.10}", "{date}_{index:0>3}"])
def test_ordinary_format_specs_still_work(template: str) -> None:
    stem = _stem(template, seed=42)
    assert stem and len(stem.encode()) <= MAX_STEM_BYTES


_spec = st.one_of(
    # The format mini-language's parts, with widths and precisions from tiny to absurd.
    st.builds(
        lambda fill, align, sign, zero, width, group, precision, kind: (
            f"{fill}{align}{sign}{zero}{width}{group}{precision}{kind}"
        ),
        st.sampled_from(["", "x", "0", "9", " ", "{", "}"]),
        st.sampled_from(["", "<", ">", "^", "="]),
        st.sampled_from(["", "+", "-", " "]),
        st.sampled_from(["", "0", "#"]),
        st.one_of(st.just(""), st.integers(0, 10**12).map(str), st.integers(1, 300).map(lambda n: "9" * n)),
        st.sampled_from(["", ",", "_"]),
        st.one_of(st.just(""), st.integers(0, 10**10).map(lambda n: f".{n}")),
        st.sampled_from(["", "s", "d", "x", "f", "e", "%", "n", "c", "b"]),
    ),
    st.text(alphabet="<>=^+-# 0123456789,_.sdxfe%{}!:", max_size=40),
)


@settings(max_examples=300, deadline=1000)
@given(field=st.sampled_from(FIELDS), spec=_spec)
def test_any_format_spec_gives_a_short_name_or_a_clear_error(field: str, spec: str) -> None:
    template = f"{{{field}:{spec}}}"
    try:
        outcome: str | ExportError = _stem(template)
    except ExportError as exc:
        outcome = exc
    if isinstance(outcome, ExportError):
        assert "\n" not in str(outcome) and len(str(outcome)) < 400
    else:
        assert len(outcome.encode()) <= MAX_STEM_BYTES


def test_a_huge_width_is_refused_within_bounded_memory_and_time() -> None:
    # Before the bound, this template built a 3 GB string (MemoryError under this limit).
    script = textwrap.dedent(
        """
        import datetime as dt, os, resource
        from projects.export_errors import ExportError
        from projects.export_names import NameAllocator
        pages = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = pages + (512 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            NameAllocator("{seed:>3000000000}_{seed:>50000000}", "p").stem(
                scene_name="s", scene_id=1, seed=1, index=1, created=dt.datetime(2024, 1, 1), render_id=1
            )
        except ExportError as exc:
            print("refused:", exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("refused:") and "{seed" in done.stdout
    assert f"at most {MAX_FORMAT_NUMBER}" in done.stdout
