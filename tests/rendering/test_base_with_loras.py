"""The issue's end to end: a scene on a fine-tuned base with two LoRAs renders through the app's provider
and runner, and the PNG it stores says which base and which LoRAs (with their weights and files' hashes)."""

from __future__ import annotations

import dataclasses
import io
import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file

from engine.model_hashes import file_sha256
from engine.model_settings import ModelSettings
from engine.providers import settings_provider
from engine.request import InstanceKind, InstanceSpec, LoraWeight, RenderRequest
from engine.runner import Runner
from projects.png_metadata import HASHES_KEY, REQUEST_KEY
from rendering.output import render_output
from tests.engine.test_bases import models  # noqa: F401  (the module-scoped fixture: SD1.5, two bases, an adapter)
from tests.engine.test_loras import lora_state
from tests.engine.tiny_sd import TINY_CONFIG


def test_a_scene_on_a_fine_tuned_base_with_two_loras_says_so_in_its_png(
    models: dict[str, Path],  # noqa: F811
    tmp_path: Path,
    no_network: list[Any],
) -> None:
    loras = {"ink": tmp_path / "ink.safetensors", "grain": tmp_path / "grain.safetensors"}
    save_file(lora_state(21, text_encoder=True), loras["ink"])
    save_file(lora_state(22, text_encoder=False), loras["grain"])
    settings = ModelSettings(
        sd15=models["sd15"], adapter=models["adapter"], device="cpu", bases={"mybase": models["folder"]}, loras=loras
    )
    runner = Runner(settings_provider(settings, TINY_CONFIG))
    plain = RenderRequest(
        prompt="shapes",
        width=64,
        height=64,
        steps=2,
        seed=5,
        model_id="mybase",
        instances=(InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5)),),
    )
    weighted = dataclasses.replace(plain, loras=(LoraWeight("ink", 0.8), LoraWeight("grain", -0.5)))

    base_only = runner.render(plain)
    result = runner.render(weighted)

    assert not np.array_equal(base_only.image, result.image), "the LoRAs act"
    with Image.open(io.BytesIO(render_output(result).png)) as png:
        stored = RenderRequest.from_json(png.info[REQUEST_KEY])
        hashes = json.loads(png.info[HASHES_KEY])
    assert stored.model_id == "mybase" and stored.loras == (LoraWeight("ink", 0.8), LoraWeight("grain", -0.5))
    assert hashes["base"] == "mybase"
    assert hashes["lora:ink"] == file_sha256(loras["ink"]) and hashes["lora:grain"] == file_sha256(loras["grain"])
    assert "lora:ink" not in runner.render(plain).model_hashes, "a render without LoRAs names none"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any connection attempt fails the test (as tests/engine/conftest.py's fixture of the same name)."""
    attempts: list[Any] = []

    def refuse(_socket: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise AssertionError(f"network access attempted: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts
