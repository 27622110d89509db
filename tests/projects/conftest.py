from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from projects.database import Project


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    return tmp_path / "shapes.instproj"


@pytest.fixture
def project(project_path: Path) -> Iterator[Project]:
    with Project.create(project_path) as opened:
        yield opened
