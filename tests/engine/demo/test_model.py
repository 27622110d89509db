import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.demo.model import DemoModelConfig, build_demo_components, load_demo, save_demo
from engine.pipeline import InstanceDiffusionPipeline
from engine.request import InstanceKind, InstanceSpec, RenderRequest


@pytest.fixture
def saved(untrained_demo_model: Path) -> Path:
    return untrained_demo_model


def test_the_saved_demo_model_fits_the_size_budget(saved: Path) -> None:
    total = sum(f.stat().st_size for f in saved.glob("*.safetensors"))
    assert total <= 30 * 1024 * 1024, f"{total / 1e6:.1f} MB"


def test_it_loads_offline_with_the_weights_it_was_saved_with(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", lambda *_: pytest.fail("the demo model reached for the network"))
    components, config = load_demo(saved)
    assert config == DemoModelConfig()
    torch.manual_seed(0)
    fresh = build_demo_components(DemoModelConfig(), saved.parent / "tok2")
    for name in ("vae", "text_encoder", "unet"):
        for key, value in getattr(fresh, name).state_dict().items():
            loaded = getattr(components, name).state_dict()[key]
            assert loaded.dtype == value.dtype
            torch.testing.assert_close(loaded, value.half().to(value.dtype), msg=f"{name}.{key}")


def test_the_pipeline_renders_with_it(saved: Path) -> None:
    components, _ = load_demo(saved)
    pipe = InstanceDiffusionPipeline(
        components.vae, components.text_encoder, components.tokenizer, components.unet, preview_factors=None
    )
    request = RenderRequest(
        prompt="a red circle on a grey background",
        width=64,
        height=64,
        steps=4,
        instances=(InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5)),),
    )
    image = pipe.render(request).image
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()


def test_preview_factors_are_saved_with_the_model(tmp_path: Path) -> None:
    import dataclasses

    config = dataclasses.replace(DemoModelConfig(), preview_factors=((0.1, 0.2, 0.3),) * 4)
    torch.manual_seed(0)
    save_demo(build_demo_components(config, tmp_path / "tok"), config, tmp_path / "model")
    _, loaded = load_demo(tmp_path / "model")
    assert loaded.preview_factors == ((0.1, 0.2, 0.3),) * 4


def test_loading_writes_nothing_so_a_read_only_install_loads(saved: Path, tmp_path: Path) -> None:
    """The bundled model may sit in a read-only site-packages, and several processes (test workers, cluster
    workers on one node) load it at once: loading must not rewrite its tokenizer files."""
    import shutil
    import stat

    folder = Path(shutil.copytree(saved, tmp_path / "model"))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        components, _ = load_demo(folder)
    finally:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert len(components.tokenizer) > 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()} == before
