"""UniFusion: InstanceDiffusion's position net, turning up to 30 instances into grounding tokens.

Each instance is a caption feature plus locations: a box, a point, a scribble (20 points), a polygon
(256 points) and a mask. Boxes, points, scribbles and polygons are Fourier-embedded and, joined with the
caption feature, each go through their own MLP (30 tokens each); the masks of all slots go through a
ConvNeXt as one 30-channel image (64 tokens). Learned null features stand in for what is absent or
dropped. At SD1.5 size the output is (B, 184, 768). The numbered rules follow spec §1.4; parameter
names are the official ones, so `position_net.*` of the official checkpoint loads unchanged.

It is installed as `unet.position_net`: diffusers' UNet calls it with the `"gligen"` entry of
`cross_attention_kwargs` and hands the tokens to every gated fuser. Which location kinds are dropped is an
argument of each call (`drops`), not state of the model: two callers sharing a model never see each
other's choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.convnext import ConvNeXtBackbone
from engine.models.fourier import fourier_embed
from engine.models.fusers import RegionTokens


@dataclass(frozen=True)
class GroundingDrops:
    """Which location kinds the model ignores (replaces by null features), as the official configs set them."""

    boxes: bool = False
    points: bool = False
    scribbles: bool = True
    masks: bool = False  # polygons and the mask image together

    @classmethod
    def for_config(cls, name: str) -> GroundingDrops:
        """The drop flags of an official test config: box, mask, point or scribble (test_<name>.yaml)."""
        try:
            return OFFICIAL_DROPS[name.removeprefix("test_")]
        except KeyError:
            raise ValueError(f"unknown grounding config {name!r}; use one of {', '.join(OFFICIAL_DROPS)}") from None


OFFICIAL_DROPS: dict[str, GroundingDrops] = {
    "box": GroundingDrops(boxes=False, points=False, scribbles=True, masks=True),
    "mask": GroundingDrops(boxes=False, points=False, scribbles=True, masks=False),
    "point": GroundingDrops(boxes=True, points=False, scribbles=True, masks=True),
    "scribble": GroundingDrops(boxes=False, points=False, scribbles=False, masks=False),
}
# What a call that names no drops gets: the official default config (test_mask.yaml).
DEFAULT_DROPS: GroundingDrops = OFFICIAL_DROPS["mask"]


@dataclass(frozen=True)
class UniFusionConfig:
    """Dimensions of the position net; the defaults are the official SD1.5 ones."""

    text_dim: int = 768  # caption feature width (CLIP pooled output)
    out_dim: int = 768  # token width = the UNet's cross-attention width
    mid_dim: int = 3072  # MLP hidden width
    max_objs: int = 30
    fourier_freqs: int = 16
    scribble_points: int = 20
    polygon_points: int = 256
    seg_size: int = 512  # the mask image is resized to seg_size x seg_size
    seg_tokens: int = 64
    convnext_depths: tuple[int, int, int, int] = (3, 3, 9, 3)
    convnext_dims: tuple[int, int, int, int] = (96, 192, 384, 768)

    @property
    def seg_feature_dim(self) -> int:
        """Width of one seg token: the ConvNeXt output memory split into `seg_tokens` rows."""
        side = self.seg_size // 32
        total = self.convnext_dims[-1] * side * side
        if self.seg_size % 32 or total % self.seg_tokens:
            raise ValueError(f"seg_size {self.seg_size} does not give a whole number of features per seg token")
        return total // self.seg_tokens

    @property
    def num_tokens(self) -> int:
        return 4 * self.max_objs + self.seg_tokens


def _mlp(in_dim: int, mid_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, mid_dim), nn.SiLU(), nn.Linear(mid_dim, mid_dim), nn.SiLU(), nn.Linear(mid_dim, out_dim)
    )


class UniFusion(nn.Module):
    def __init__(self, config: UniFusionConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or UniFusionConfig()
        per_coord = 2 * config.fourier_freqs
        box_dim, point_dim = per_coord * 4, per_coord * 2
        scribble_dim, polygon_dim = per_coord * 2 * config.scribble_points, per_coord * 2 * config.polygon_points
        seg_dim = config.seg_feature_dim

        self.in_conv = nn.Conv2d(config.max_objs, 3, kernel_size=3, stride=1, padding=1)
        self.convnext_tiny_backbone = ConvNeXtBackbone(3, config.convnext_depths, config.convnext_dims)
        self.pos_embedding = nn.Parameter(torch.zeros(1, config.seg_tokens, seg_dim))
        self.linears_list = nn.ModuleList(
            [
                _mlp(config.text_dim + box_dim, config.mid_dim, config.out_dim),
                _mlp(config.text_dim + point_dim, config.mid_dim, config.out_dim),
                _mlp(config.text_dim + scribble_dim, config.mid_dim, config.out_dim),
                _mlp(config.text_dim + polygon_dim, config.mid_dim, config.out_dim),
                _mlp(seg_dim, config.mid_dim, config.out_dim),
            ]
        )
        self.null_positive_feature = nn.Parameter(torch.zeros(config.text_dim))
        self.null_position_feature = nn.Parameter(torch.zeros(box_dim))
        self.null_point_feature = nn.Parameter(torch.zeros(point_dim))
        self.null_scribble_feature = nn.Parameter(torch.zeros(scribble_dim))
        self.null_polygon_feature = nn.Parameter(torch.zeros(polygon_dim))
        self.null_seg_feature = nn.Parameter(torch.zeros(seg_dim))

    def forward(
        self,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
        positive_embeddings: torch.Tensor | None = None,
        scribbles: torch.Tensor | None = None,
        polygons: torch.Tensor | None = None,
        segs: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        objs: torch.Tensor | RegionTokens | None = None,
        drops: GroundingDrops | None = None,
    ) -> torch.Tensor | RegionTokens:
        """Tokens (B, 4*max_objs + seg_tokens, out_dim): box, point, scribble, polygon, then seg tokens.

        The tokens do not depend on the timestep, so a sampler computes them once and passes them back in
        as `objs` on every UNet call; they are then returned as they are.

        Args:
            boxes: (B, N, 4) normalised x0, y0, x1, y1.
            masks: (B, N) 1 where a slot holds an instance.
            positive_embeddings: (B, N, text_dim) caption features.
            scribbles: (B, N, 2 * scribble_points) normalised x, y pairs; zeros where absent.
            polygons: (B, N, 2 * polygon_points); zeros where absent.
            segs: (B, N, H, W) binary masks, slot s in channel s; resized to seg_size.
            points: (B, N, 2); callers put the box centre where no point was given.
            objs: precomputed tokens (with their regions, for instance-masked fusers), returned unchanged.
            drops: the location kinds this call ignores; None: `DEFAULT_DROPS`.
        """
        if objs is not None:
            return objs
        if boxes is None or masks is None or positive_embeddings is None:
            raise ValueError("UniFusion needs boxes, masks and positive_embeddings (or precomputed objs)")
        cfg = self.config
        batch, slots = masks.shape
        dtype = positive_embeddings.dtype
        scribbles = _or_zeros(scribbles, batch, slots, 2 * cfg.scribble_points, positive_embeddings)
        polygons = _or_zeros(polygons, batch, slots, 2 * cfg.polygon_points, positive_embeddings)
        points = _or_zeros(points, batch, slots, 2, positive_embeddings)

        drops = DEFAULT_DROPS if drops is None else drops
        drop_boxes = drops.boxes
        if drop_boxes and drops.points and drops.scribbles and drops.masks:
            drop_boxes = False  # never drop everything: the official code keeps boxes then

        present = masks.to(dtype).unsqueeze(-1)  # (B, N, 1)
        text = present * positive_embeddings + (1 - present) * self.null_positive_feature

        def gated(values: torch.Tensor, gate: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
            embedded = fourier_embed(values, cfg.fourier_freqs).to(dtype)
            return gate * embedded + (1 - gate) * null

        none = torch.zeros_like(present)
        box_gate = none if drop_boxes else present
        point_gate = none if drops.points else present
        # Scribbles and polygons: a present slot counts even with all-zero points (it embeds zeros);
        # only empty slots and dropped kinds get the null feature.
        scribble_gate = none if drops.scribbles else ((scribbles.sum(-1, keepdim=True) + present) > 0).to(dtype)
        polygon_gate = none if drops.masks else ((polygons.sum(-1, keepdim=True) + present) > 0).to(dtype)

        box_tokens = self.linears_list[0](torch.cat([text, gated(boxes, box_gate, self.null_position_feature)], -1))
        point_tokens = self.linears_list[1](torch.cat([text, gated(points, point_gate, self.null_point_feature)], -1))
        scribble_tokens = self.linears_list[2](
            torch.cat([text, gated(scribbles, scribble_gate, self.null_scribble_feature)], -1)
        )
        polygon_tokens = self.linears_list[3](
            torch.cat([text, gated(polygons, polygon_gate, self.null_polygon_feature)], -1)
        )
        seg_tokens = self.linears_list[4](self._seg_features(None if drops.masks else segs, batch, dtype))
        return torch.cat([box_tokens, point_tokens, scribble_tokens, polygon_tokens, seg_tokens], dim=1)

    def _seg_features(self, segs: torch.Tensor | None, batch: int, dtype: torch.dtype) -> torch.Tensor:
        """The 64 seg tokens' inputs (`segs` None: masks absent or dropped). The gate is per sample: on if
        any slot of the sample has mask pixels."""
        cfg = self.config
        null = self.null_seg_feature.to(dtype).expand(batch, cfg.seg_tokens, -1)
        if segs is None:
            return null + self.pos_embedding
        gate = (segs.flatten(1).sum(-1) > 0).to(dtype)[:, None, None]  # (B, 1, 1)
        if not bool(gate.any()):
            return null + self.pos_embedding  # no masks at all: skip the ConvNeXt, its output would be gated off
        image = F.interpolate(segs.to(dtype), size=(cfg.seg_size, cfg.seg_size), mode="nearest")
        features = self.convnext_tiny_backbone(self.in_conv(image))  # (B, C, S/32, S/32)
        # The official code reshapes the feature memory as it lies, not per spatial cell (spec §1.4).
        features = features.reshape(batch, -1, cfg.seg_tokens).transpose(1, 2)
        tokens: torch.Tensor = gate * features + (1 - gate) * null + self.pos_embedding
        return tokens


def _or_zeros(value: torch.Tensor | None, batch: int, slots: int, width: int, like: torch.Tensor) -> torch.Tensor:
    return like.new_zeros(batch, slots, width) if value is None else value
