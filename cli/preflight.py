"""`main.py render`'s pre-flight check: what a queued scene asks of the demo model that it cannot do.

The same findings as the GUI's banner (engine.demo.limits), one line each on stderr; they never stop a
render.
"""

from __future__ import annotations

import sys
from typing import TextIO

from engine.demo import limits
from engine.request import RenderRequest


def scene_warnings(name: str, request: RenderRequest) -> list[str]:
    """One line per finding for a scene queued as `request` (none for a model other than the demo model)."""
    if request.model_id != limits.MODEL_ID:
        return []
    captions = [inst.caption for inst in request.instances]
    findings = limits.check(request.prompt, captions, request.width, request.height)
    findings = sorted(findings, key=lambda finding: finding.info)  # what is wrong first, then notes
    return [f"{'note' if f.info else 'warning'}: scene {name!r}: {f.message}" for f in findings]


def print_warnings(lines: list[str], stream: TextIO | None = None) -> None:
    out = stream if stream is not None else sys.stderr
    for line in lines:
        print(line, file=out)
    out.flush()
