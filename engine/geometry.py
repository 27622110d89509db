"""Geometry value types of a request, in normalised [0, 1] canvas coordinates: points, boxes, masks.

Torch-free: numpy and pycocotools are imported only when a mask is encoded, decoded or measured.
Coordinates: x to the right, y down; a box is (x0, y0, x1, y1). A box around pixels covers them
whole: pixel column c of a W-wide bitmap spans [c / W, (c + 1) / W].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from engine.validation import Problem, Reader, RequestValidationError, is_int

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["MAX_MASK_SIDE", "Box", "MaskRLE", "Point", "bitmap_bounding_box", "mask_problems"]

MAX_MASK_SIDE: Final = 8192

Point = tuple[float, float]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class MaskRLE:
    """A binary mask as COCO compressed RLE (column-major run lengths, LEB128-like string).

    The bitmap covers the whole canvas at its own resolution `height` x `width`; it need not match
    the canvas size in pixels.
    """

    height: int
    width: int
    counts: str

    def __post_init__(self) -> None:
        problems = mask_problems(self)
        if problems:
            raise RequestValidationError([Problem(f"mask.{name}", f"mask: {text}") for name, text in problems])

    @classmethod
    def from_bitmap(cls, bitmap: npt.ArrayLike) -> MaskRLE:
        """Encode a 2-D array (non-zero = inside) with pycocotools."""
        import numpy as np
        from pycocotools import mask as coco_mask

        array = np.asarray(bitmap)
        if array.ndim != 2:
            raise ValueError(f"a mask bitmap must be 2-D, got shape {array.shape}")
        encoded = coco_mask.encode(np.asfortranarray(array != 0, dtype=np.uint8))
        height, width = (int(v) for v in encoded["size"])
        return cls(height=height, width=width, counts=encoded["counts"].decode("ascii"))

    def decode(self) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """Decode with pycocotools into a (height, width) uint8 array of 0/1.

        pycocotools reads uninitialised memory when the runs cover fewer pixels than the size says,
        so a decode is only trusted when re-encoding gives back exactly the same counts.
        """
        import numpy as np
        from pycocotools import mask as coco_mask

        rle = {"size": [self.height, self.width], "counts": self.counts.encode("ascii")}
        bad = RequestValidationError(
            [Problem("mask.counts", f"mask: the RLE does not decode to a {self.height}x{self.width} bitmap")]
        )
        try:
            bitmap = coco_mask.decode(rle)
        except ValueError as exc:
            raise bad from exc
        bitmap = np.ascontiguousarray(bitmap)
        if bitmap.shape != (self.height, self.width) or int(bitmap.max(initial=0)) > 1:
            raise bad
        if coco_mask.encode(np.asfortranarray(bitmap))["counts"] != rle["counts"]:
            raise bad
        return bitmap

    def bounding_box(self) -> Box | None:
        """The normalised box (x0, y0, x1, y1) around the mask's pixels; None for an empty mask.

        Normalised by the mask's own size, so it is a box on the canvas whatever the bitmap's
        resolution; it covers the pixels whole (a mask of column 3 alone, 10 wide, spans x 0.3 to
        0.4). Decoded, so a mask whose runs do not fit its size raises `RequestValidationError`.
        """
        return bitmap_bounding_box(self.decode())

    def to_dict(self) -> dict[str, Any]:
        return {"size": [self.height, self.width], "counts": self.counts}

    @classmethod
    def from_dict(cls, data: Any, where: str = "mask") -> MaskRLE:
        reader = Reader(where)
        obj = reader.mapping(data, where)
        size = reader.sequence(obj.get("size"), f"{where}.size", length=2) or (0, 0)  # () when it is wrong
        height, width = (reader.integer(v, f"{where}.size") for v in size)
        counts = reader.string(obj.get("counts"), f"{where}.counts")
        reader.raise_if_any()
        assert counts is not None
        return cls(height=height, width=width, counts=counts)


def mask_problems(mask: MaskRLE) -> list[tuple[str, str]]:
    """(field, text) for each structural problem of a mask; callers add their own context."""
    problems: list[tuple[str, str]] = []
    for name, side in (("height", mask.height), ("width", mask.width)):
        if not is_int(side) or not 1 <= side <= MAX_MASK_SIDE:
            problems.append(("size", f"{name} {side!r} is not between 1 and {MAX_MASK_SIDE}"))
    if not isinstance(mask.counts, str) or not mask.counts:
        problems.append(("counts", "the RLE counts are empty"))
    elif not mask.counts.isascii() or not all(48 <= ord(c) < 48 + 64 for c in mask.counts):
        # pycocotools' compressed alphabet is the 64 characters from '0' to 'o'.
        problems.append(("counts", "the RLE counts contain characters outside COCO's alphabet"))
    return problems


def box_iou(a: Box, b: Box) -> float:
    """The intersection over union of two normalised (x0, y0, x1, y1) boxes; 0 when both are empty."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def bitmap_bounding_box(bitmap: npt.ArrayLike) -> Box | None:
    """The normalised box (x0, y0, x1, y1) around the non-zero pixels of a 2-D bitmap; None if it has none.

    It covers those pixels whole: x0 is the left edge of the leftmost pixel and x1 the right edge
    of the rightmost, each divided by the bitmap's width (y likewise by its height).
    """
    import numpy as np

    array = np.asarray(bitmap)
    if array.ndim != 2:
        raise ValueError(f"a bitmap must be 2-D, got shape {array.shape}")
    ys, xs = np.nonzero(array)
    if len(xs) == 0:
        return None
    height, width = array.shape
    return (
        int(xs.min()) / width,
        int(ys.min()) / height,
        (int(xs.max()) + 1) / width,
        (int(ys.max()) + 1) / height,
    )
