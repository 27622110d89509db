"""Tiny randomly initialised open-vocabulary detectors, saved as a user would have them (save_pretrained,
safetensors, the processor beside the model), with tokenizers written here: no download, no real weights.
They prove wiring, shapes and thresholds, not accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import torch
from transformers import (
    BertTokenizer,
    GroundingDinoConfig,
    GroundingDinoForObjectDetection,
    GroundingDinoProcessor,
    Owlv2Config,
    Owlv2ForObjectDetection,
    Owlv2Processor,
)
from transformers.models.grounding_dino.image_processing_pil_grounding_dino import GroundingDinoImageProcessorPil
from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

from engine.demo.vocabulary import write_tokenizer

OWL_SIDE: Final = 32  # 4 x 4 patches of 8 pixels: 16 queries
OWL_QUERIES: Final = 16
DINO_SIDE: Final = 128  # its smallest feature level must be more than one pixel
DINO_QUERIES: Final = 12
DINO_WORDS: Final = (
    "a",
    "an",
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "orange",
    "circle",
    "square",
    "star",
    "dog",
)


def save_tiny_owlv2(folder: Path) -> Path:
    tokenizer = write_tokenizer(folder)  # the demo world's tiny CLIP tokenizer
    text = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 16,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "image_size": OWL_SIDE,
        "patch_size": 8,
    }
    torch.manual_seed(0)
    model = Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=vision, projection_dim=32))
    with torch.no_grad():  # random shift and scale heads saturate every score at 1: keep them near cos(text, box)
        for head in (model.class_head.logit_shift, model.class_head.logit_scale):
            head.weight.zero_()
            head.bias.zero_()
    model.save_pretrained(folder, safe_serialization=True)
    image_processor = Owlv2ImageProcessorPil(size={"height": OWL_SIDE, "width": OWL_SIDE})
    Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)  # type: ignore[no-untyped-call]
    return folder


def save_tiny_grounding_dino(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *DINO_WORDS]
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)})
    config = GroundingDinoConfig(
        backbone_config={
            "model_type": "swin",
            "embed_dim": 8,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 1, 1],
            "window_size": 2,
            "patch_size": 4,
            "image_size": DINO_SIDE,
            "out_indices": [2, 3, 4],
        },
        text_config={
            "model_type": "bert",
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": len(vocab),
            "max_position_embeddings": 64,
        },
        d_model=32,  # its GroupNorms have 32 groups
        encoder_layers=1,
        decoder_layers=2,  # transformers ties the box heads of layers 1.. to layer 0's: it needs two
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_n_points=1,
        decoder_n_points=1,
        num_queries=DINO_QUERIES,
        max_text_len=32,
    )
    torch.manual_seed(0)
    GroundingDinoForObjectDetection(config).save_pretrained(folder, safe_serialization=True)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": DINO_SIDE, "longest_edge": DINO_SIDE})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)  # type: ignore[no-untyped-call]
    processor.save_pretrained(folder)
    return folder
