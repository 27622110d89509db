"""The wheel ships resources/ as package data, and an installed copy finds it through importlib.resources.

The wheel is built offline from a copy of the source tree (so no build/ or *.egg-info lands in the repo)
and installed into a bare folder; the installed code is then run from a directory that is not the repo,
with only that folder on sys.path, so nothing can be found in the checkout by accident.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from resources import ResourcesNotOnDiskError, resource_path, resources_root
from tests.conftest import REPO_ROOT

# Files the app cannot do without: the loader's SD1.5 configs and tokenizer, the demo model, the sample.
REQUIRED = (
    "resources/__init__.py",
    "resources/demo/model/config.json",
    "resources/demo/model/manifest.json",
    "resources/demo/model/unet.safetensors",
    "resources/demo/model/vae.safetensors",
    "resources/demo/model/text_encoder.safetensors",
    "resources/demo/model/tokenizer/vocab.json",
    "resources/demo/model/tokenizer/merges.txt",
    "resources/samples/shapes.instproj",
    "resources/sd15/model_index.json",
    "resources/sd15/unet/config.json",
    "resources/sd15/vae/config.json",
    "resources/sd15/text_encoder/config.json",
    "resources/sd15/scheduler/scheduler_config.json",
    "resources/sd15/tokenizer/vocab.json",
    "resources/sd15/tokenizer/merges.txt",
    "resources/sd15/tokenizer/tokenizer_config.json",
    "resources/icons/app.svg",
    "resources/official-demos/demo_corgi_kitchen.json",
)
PLANTED_JUNK = ("resources/__pycache__/planted.cpython-311.pyc", "resources/demo/model/planted.pyc")


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _wheel_sources() -> list[str]:
    """What the wheel is built from: pyproject.toml, the readme, its py-modules and the packages it finds."""
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools_config = pyproject["tool"]["setuptools"]
    patterns = setuptools_config["packages"]["find"]["include"]
    packages = sorted(
        p.name
        for p in REPO_ROOT.iterdir()
        if (p / "__init__.py").is_file() and any(fnmatch.fnmatchcase(p.name, pattern) for pattern in patterns)
    )
    modules = [f"{name}.py" for name in setuptools_config.get("py-modules", [])]
    return ["pyproject.toml", pyproject["project"]["readme"], *modules, *packages]


def _bundled_files(root: Path) -> set[str]:
    """Every file under root/resources, as wheel names, leaving out Python's caches."""
    return {
        p.relative_to(root).as_posix()
        for p in (root / "resources").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline (no index, no build isolation) from a copy of the tree with planted junk."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    sources = _wheel_sources()
    assert {"main.py", "engine", "projects", "desktop", "resources"} <= set(sources)
    for name in sources:
        if (REPO_ROOT / name).is_dir():
            shutil.copytree(REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO_ROOT / name, src / name)
    for junk in PLANTED_JUNK:
        (src / junk).parent.mkdir(parents=True, exist_ok=True)
        (src / junk).write_bytes(b"junk")
    dist = tmp / "dist"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        src,
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-w",
        dist,
        cwd=tmp,
        env=env,
    )
    (built,) = dist.glob("instance_studio-*.whl")
    return built


def test_the_wheel_holds_every_bundled_file_and_no_junk(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    shipped = {n for n in names if n.startswith("resources/")}
    missing_required = [n for n in REQUIRED if n not in names]
    assert not missing_required, f"not in the wheel: {missing_required}"
    assert shipped == _bundled_files(REPO_ROOT)
    assert len([n for n in shipped if n.startswith("resources/icons/") and n.endswith(".svg")]) > 30
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert {"main.py", "engine/loading.py", "desktop/icons.py", "resources/__init__.py"} <= names


def test_an_installed_wheel_finds_its_resources_away_from_the_repo(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    _run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", site, wheel, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(site)!r})\n"
        "import resources\n"
        "from resources import resource_path\n"
        "demo = resource_path('demo', 'model')\n"
        "print(json.dumps({'module': resources.__file__, 'demo': str(demo), 'demo_is_dir': demo.is_dir(),\n"
        "    'weights': (demo / 'unet.safetensors').is_file(),\n"
        "    'sample': resource_path('samples/shapes.instproj').is_file(),\n"
        "    'vocab': resource_path('sd15', 'tokenizer', 'vocab.json').is_file(),\n"
        "    'icon': resource_path('icons', 'app.svg').is_file()}))\n"
    )
    # -I: no PYTHONPATH, no user site, no script or cwd on sys.path; -S: not even the venv's site-packages
    # (where the editable install would map packages back to the repo). So the accessor is stdlib-only too.
    found = json.loads(_run(sys.executable, "-I", "-S", "-c", probe, cwd=elsewhere))
    assert Path(found["module"]).is_relative_to(site)
    assert Path(found["demo"]) == (site / "resources" / "demo" / "model").resolve()
    assert found["demo_is_dir"] and found["weights"] and found["sample"] and found["vocab"] and found["icon"]


def test_resource_path_points_into_the_package_directory() -> None:
    assert resources_root() == (REPO_ROOT / "resources").resolve()
    assert resource_path("demo", "model") == resources_root() / "demo" / "model"
    assert resource_path("samples/shapes.instproj").is_file()
    assert resource_path() == resources_root()


@pytest.mark.parametrize("parts", [("..", "engine"), ("demo", "..", "..", "main.py"), ("/etc", "passwd")])
def test_resource_path_stays_inside_resources(parts: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="relative to resources/"):
        resource_path(*parts)


def test_a_zipped_package_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "resources.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(REPO_ROOT / "resources" / "__init__.py", "resources/__init__.py")
    probe = (
        f"import sys; sys.path.insert(0, {str(archive)!r})\n"
        "from resources import ResourcesNotOnDiskError, resource_path\n"
        "try:\n"
        "    resource_path('demo')\n"
        "except ResourcesNotOnDiskError as exc:\n"
        "    print(exc)\n"
    )
    message = _run(sys.executable, "-I", "-S", "-c", probe, cwd=tmp_path)
    assert "not a directory on disk" in message and "zip" in message
    assert issubclass(ResourcesNotOnDiskError, RuntimeError)
