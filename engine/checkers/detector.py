"""The placement checker for real models: an open-vocabulary detector (OWLv2 or Grounding DINO) from the
user's own folder, run through transformers, offline.

The detector is asked for every instance caption at once. Each of its candidate regions (a box per query)
gets a score per caption: OWLv2 scores a query against each caption's text embedding; Grounding DINO
scores it against each token of the joined prompt ("a cat. a dog."), and a caption's score is its best
token's. For an instance, the candidates are the regions whose score for its caption reaches the score
threshold; the one that best matches the requested location (`box_overlap`: IoU for a box or mask, inside
for a point, the share of a scribble's points inside) is what was found. No candidate: not found, with
the best score the detector gave that caption.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import torch
from safetensors import SafetensorError

from engine.checkers.base import box_overlap
from engine.checkers.detector_files import CheckerFilesError, inspect_checker_folder
from engine.placement_report import Box, InstancePlacement, PlacementReport, PlacementThresholds
from engine.request import InstanceSpec, RenderRequest

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["DetectorChecker", "load_detector"]

# Keep every query in post-processing (sigmoid scores are > -1), so its boxes line up with the logits.
_KEEP_ALL: Final = -1.0
_LOAD_ERRORS: Final = (OSError, ValueError, RuntimeError, KeyError, TypeError, ImportError, AttributeError)


@dataclass(frozen=True)
class _Detections:
    boxes: npt.NDArray[np.float64]  # (queries, 4) normalised x0, y0, x1, y1
    scores: npt.NDArray[np.float64]  # (queries, captions) 0..1


class DetectorChecker:
    """A loaded detector with its processor; `check` may be called from one thread at a time (a lock sees to it)."""

    def __init__(self, name: str, family: str, model: PreTrainedModel, processor: Any, device: torch.device) -> None:
        self.name = name
        self.family = family
        self.model = model
        self.processor = processor  # the family's processor: its post-processing is not on ProcessorMixin
        self.device = device
        self._lock = threading.Lock()

    def check(
        self, image: npt.NDArray[np.uint8], request: RenderRequest, thresholds: PlacementThresholds
    ) -> PlacementReport:
        captions = list(dict.fromkeys(spec.caption.strip() for spec in request.instances))
        if not captions:
            return PlacementReport(self.name, (), thresholds)
        with self._lock:
            detections = self.detect(image, captions)
        column = {caption: i for i, caption in enumerate(captions)}
        found = tuple(
            _pick(spec, detections.boxes, detections.scores[:, column[spec.caption.strip()]], thresholds.score)
            for spec in request.instances
        )
        return PlacementReport(self.name, found, thresholds)

    def detect(self, image: npt.NDArray[np.uint8], captions: list[str]) -> _Detections:
        """Every query's normalised box and its score for each caption."""
        from PIL import Image

        height, width = image.shape[:2]
        picture = Image.fromarray(np.ascontiguousarray(image[..., :3]), "RGB")
        with torch.inference_mode():
            if self.family == "owlv2":
                boxes, scores = self._owlv2(picture, captions, height, width)
            else:
                boxes, scores = self._grounding_dino(picture, captions, height, width)
        normalised = boxes.double().cpu().numpy() / np.array([width, height, width, height], dtype=np.float64)
        return _Detections(np.clip(normalised, 0.0, 1.0), scores.double().cpu().numpy())

    def _owlv2(self, picture: Any, captions: list[str], height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        text_length = self.model.config.text_config.max_position_embeddings
        inputs = self.processor(
            text=[captions],
            images=picture,
            return_tensors="pt",
            padding="max_length",
            truncation=True,
            max_length=text_length,
        ).to(self.device)
        outputs = self.model(**inputs)
        # OWLv2 pads the image to a square at the bottom and right: its boxes are relative to that square.
        side = max(height, width)
        (result,) = self.processor.post_process_grounded_object_detection(
            outputs, threshold=_KEEP_ALL, target_sizes=[(side, side)]
        )
        return result["boxes"], torch.sigmoid(outputs.logits[0])

    def _grounding_dino(
        self, picture: Any, captions: list[str], height: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # Grounding DINO reads one prompt, the captions joined by dots (lower case, as it was trained);
        # where each caption is in it tells which tokens score it.
        parts = [caption.lower().replace(".", " ").strip() for caption in captions]
        spans, prompt, at = [], "", 0
        for part in parts:
            spans.append((at, at + len(part)))
            prompt += part + ". "
            at = len(prompt)
        inputs = self.processor(
            text=prompt.strip(),
            images=picture,
            return_tensors="pt",
            truncation=True,
            max_length=self.model.config.max_text_len,
            return_offsets_mapping=True,
        )
        offsets = inputs.pop("offset_mapping")[0]
        inputs = inputs.to(self.device)
        outputs = self.model(**inputs)
        (result,) = self.processor.post_process_grounded_object_detection(
            outputs, inputs["input_ids"], threshold=_KEEP_ALL, target_sizes=[(height, width)]
        )
        token_probs = torch.sigmoid(outputs.logits[0])  # (queries, max_text_len)
        scores = torch.zeros(token_probs.shape[0], len(captions), device=token_probs.device)
        for column, (start, end) in enumerate(spans):
            # A caption's tokens: those whose characters lie in its span ((0, 0) marks special tokens).
            tokens = [i for i, (a, b) in enumerate(offsets.tolist()) if b > a and start <= a and b <= end]
            tokens = [i for i in tokens if i < token_probs.shape[1]]
            if tokens:  # none when the prompt was cut short before this caption: it scores 0
                scores[:, column] = token_probs[:, tokens].max(dim=1).values
        return result["boxes"], scores


def _pick(
    spec: InstanceSpec, boxes: npt.NDArray[np.float64], scores: npt.NDArray[np.float64], min_score: float
) -> InstancePlacement:
    """The candidate for `spec` (score at least `min_score`) that best matches where it was asked for."""
    candidates = np.flatnonzero(scores >= min_score)
    if candidates.size == 0:
        return InstancePlacement(found=False, score=float(scores.max()) if scores.size else 0.0)
    boxes_of = {int(q): _box(boxes[q]) for q in candidates}
    best = max(boxes_of, key=lambda q: (box_overlap(spec, boxes_of[q]), scores[q]))
    return InstancePlacement(
        found=True, iou=box_overlap(spec, boxes_of[best]), score=float(scores[best]), box=boxes_of[best]
    )


def _box(values: npt.NDArray[np.float64]) -> Box:
    x0, y0, x1, y1 = (float(v) for v in values)
    return (x0, y0, x1, y1)


def load_detector(folder: Path, device: str | torch.device = "cpu") -> DetectorChecker:
    """Load the detector in `folder` offline (local files only, safetensors only) onto `device`.

    CheckerFilesError (one line naming the folder) when the folder is missing, holds no zero-shot
    detector, or its files cannot be loaded or do not match its config."""
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    files = inspect_checker_folder(folder)
    try:
        processor = AutoProcessor.from_pretrained(files.folder, local_files_only=True)  # type: ignore[no-untyped-call]
        model, info = AutoModelForZeroShotObjectDetection.from_pretrained(
            files.folder, local_files_only=True, use_safetensors=True, output_loading_info=True
        )
    except (*_LOAD_ERRORS, SafetensorError) as exc:  # SafetensorError: a file cut short after its header
        raise CheckerFilesError(files.folder, f"cannot be loaded ({_first_line(exc)})") from None
    # transformers fills tensors a file lacks with random values; a detector made of those finds nothing real.
    missing = [*info.get("missing_keys", ()), *(k for k, *_ in info.get("mismatched_keys", ()))]
    if missing:
        raise CheckerFilesError(
            files.folder,
            f"its weights do not fit its config: {len(missing)} tensors missing or of another shape "
            f"(e.g. {sorted(missing)[0]})",
        )
    _check_processor(files.folder, processor)
    target = torch.device(device)
    return DetectorChecker(files.name, files.family, model.to(target).eval(), processor, target)


def _check_processor(folder: Path, processor: Any) -> None:
    """Preprocess a tiny image now, so a missing image library shows when the checker loads, not at a render."""
    from PIL import Image

    try:
        processor.image_processor(Image.new("RGB", (8, 8)), return_tensors="pt")
    except ImportError as exc:
        reason = f"its image processor needs a library that is missing ({_first_line(exc)})"
        raise CheckerFilesError(folder, reason) from None


def _first_line(exc: BaseException) -> str:
    text = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return text[0] if text else type(exc).__name__
