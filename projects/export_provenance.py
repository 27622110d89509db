"""`provenance.json`: what a dataset was made from and how, so that a training run can be traced back.

It names the app version and export time; the settings (format, which renders, include, labels, split
ratios and seed); the placement thresholds the renders were judged by and the checkers that judged
them; every distinct set of model hashes among the exported renders; per split, its scenes and each
render's id, seed, scene and image file; the counts (images, labels, instances skipped and why) and the
renders left out and why.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Final

from engine.placement_report import PlacementThresholds
from projects.export_datasets import LabelCounts
from projects.export_images import json_bytes
from projects.export_selection import LeftOut
from projects.export_source import RenderData
from projects.png_metadata import app_version

PROVENANCE_FORMAT: Final = "instance-studio-dataset"
PROVENANCE_VERSION: Final = 1
ALL: Final = "all"  # the one "split" of a dataset exported without splits


@dataclass
class _Split:
    scenes: dict[int, str] = field(default_factory=dict)
    renders: list[dict[str, Any]] = field(default_factory=list)


class Provenance:
    """Collects each exported render, then writes the file."""

    def __init__(self, project_name: str, settings: dict[str, Any], thresholds: PlacementThresholds) -> None:
        self.project_name = project_name
        self.settings = settings
        self.thresholds = thresholds
        self._splits: dict[str, _Split] = {}
        self._hashes: list[dict[str, Any]] = []
        self._checkers: set[str] = set()

    def add(self, render: RenderData, image: str, split: str | None) -> None:
        entry = self._splits.setdefault(split or ALL, _Split())
        ref = render.ref
        entry.scenes[ref.scene_id] = ref.scene_name
        report = render.report
        if report is not None:
            self._checkers.add(report.checker)
        entry.renders.append(
            {
                "render_id": ref.render_id,
                "scene_id": ref.scene_id,
                "seed": ref.seed,
                "image": image,
                "placement": None if report is None else report.summary(self.thresholds),
            }
        )
        if render.model_hashes not in self._hashes:
            self._hashes.append(render.model_hashes)

    def to_json(self, counts: LabelCounts, left_out: tuple[LeftOut, ...], best_with_misses: int) -> bytes:
        data = {
            "format": PROVENANCE_FORMAT,
            "version": PROVENANCE_VERSION,
            "app_version": app_version(),
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "project": self.project_name,
            "settings": self.settings,
            "placement": {"thresholds": self.thresholds.to_dict(), "checkers": sorted(self._checkers)},
            "model_hashes": self._hashes,
            "splits": {
                name: {
                    "scenes": [{"id": i, "name": n} for i, n in sorted(split.scenes.items())],
                    "renders": split.renders,
                    "images": len(split.renders),
                }
                for name, split in self._splits.items()
            },
            "counts": {
                "images": sum(len(split.renders) for split in self._splits.values()),
                "labels": counts.annotations,
                "skipped_points": counts.skipped_points,
                "skipped_empty": counts.skipped_empty,
                "skipped_not_found": counts.skipped_not_found,
                "skipped_unchecked": counts.skipped_unchecked,
                "best_with_misses": best_with_misses,
            },
            "left_out": [
                {"reason": item.reason, "renders": item.renders, "instances": item.instances, "missed": item.missed}
                for item in left_out
            ],
        }
        # Plain data only: model hashes come from the database and must round-trip through JSON.
        return json_bytes(json.loads(json.dumps(data)), indent=2) + b"\n"
