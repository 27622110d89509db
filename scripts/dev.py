"""Set up a local virtual environment, then run the app or the checks. Standard library only.

    python3 scripts/dev.py run [ARGS...]    start Instance Studio (ARGS go to main.py)
    python3 scripts/dev.py test [PYTEST ARGS...]
                                            ruff, mypy, import contracts, then the whole test suite

The environment lives in .venv beside this repository. Installing happens only when pyproject.toml
changed since the last install, so a second run starts at once. Torch comes first, from
INSTANCE_STUDIO_TORCH if set (e.g. a CUDA build), else the pinned CPU build, so that pip never
pulls another torch in through a dependency. Nothing here downloads model weights.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PINNED_TORCH = "torch==2.13.0"
EXTRAS = {"run": "", "test": "[test,dev,cluster]"}  # the tests run the cluster path on a local Ray


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def run(*cmd: str | Path, check: bool = True) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check).returncode


def ensure_environment(extras: str) -> Path:
    python = venv_python()
    if not python.exists():
        if sys.version_info < (3, 11):  # noqa: UP036 - this script runs under whatever python3 is
            sys.exit(f"Instance Studio needs Python 3.11 or newer; this is {sys.version.split()[0]}")
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    torch_spec = os.environ.get("INSTANCE_STUDIO_TORCH", PINNED_TORCH)
    stamp = VENV / f".installed{extras or '[]'}"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + torch_spec.encode()).hexdigest()
    # An install with the test extras also satisfies a plain run.
    candidates = {stamp, VENV / f".installed{EXTRAS['test']}"}
    if any(c.exists() and c.read_text() == want for c in candidates):
        return python
    pip = (python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet")
    has_torch = subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0
    if not has_torch and run(*pip, *torch_spec.split(), check=False) != 0:
        sys.exit(
            f"could not install {torch_spec}. Install the torch build for your machine into {VENV} "
            "(see README: 'Torch and CUDA'), or set INSTANCE_STUDIO_TORCH, then run this again."
        )
    run(*pip, "-e", f".{extras}")
    stamp.write_text(want)
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    python = ensure_environment(EXTRAS[command])
    if command == "run":
        return subprocess.run([python, ROOT / "main.py", *rest], cwd=ROOT).returncode
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    checks = [
        [python, "-m", "ruff", "check", "."],
        [python, "-m", "ruff", "format", "--check", "."],
        [python, "-m", "mypy", "engine", "projects", "desktop", "common", "rendering", "cli", "main.py"],
        [VENV / ("Scripts" if os.name == "nt" else "bin") / "lint-imports"],
        # One worker per core, a test file at a time on each (its module fixtures are built once);
        # INSTANCE_STUDIO_TEST_WORKERS=0 runs them in this process, e.g. for a debugger.
        [
            python,
            "-m",
            "pytest",
            "-n",
            os.environ.get("INSTANCE_STUDIO_TEST_WORKERS", "auto"),
            "--dist",
            "loadfile",
            *rest,
        ],
    ]
    for check in checks:
        print("+", " ".join(str(c) for c in check), flush=True)
        code = subprocess.run([str(c) for c in check], cwd=ROOT, env=env).returncode
        if code != 0:
            print(f"FAILED: {' '.join(str(c) for c in check[1:4])} exited {code}", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
