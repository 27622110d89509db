"""Model configs are checked for types and bounds before anything is built (issue 15, item 14)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.demo.model import load_demo
from engine.model_config_check import DEMO_CONFIG, ModelConfigError, check_config
from engine.model_configs import read_model_config
from engine.weights_io import WeightFileError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO_ROOT / "resources" / "demo" / "model"
DEMO: dict[str, Any] = json.loads((DEMO_DIR / "config.json").read_text(encoding="utf-8"))
SD15_UNET: dict[str, Any] = json.loads((REPO_ROOT / "resources" / "sd15" / "unet" / "config.json").read_text())


def _leaves(
    value: Any, path: str = "", keys: tuple[str | int, ...] = ()
) -> list[tuple[str, tuple[str | int, ...], Any]]:
    """(shown path, key path, value) of every number and true/false in a config."""
    if isinstance(value, dict):
        return [
            leaf
            for key, item in value.items()
            for leaf in _leaves(item, f"{path}.{key}" if path else key, (*keys, key))
        ]
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in _leaves(item, f"{path}[{index}]", (*keys, index))]
    return [(path, keys, value)] if isinstance(value, int | float) else []


LEAVES = _leaves(DEMO)
# Settings diffusers itself lets be null (e.g. attention_head_dim: derived from num_attention_heads).
NULLABLE = frozenset(
    {
        "attention_head_dim",
        "num_attention_heads",
        "norm_num_groups",
        "time_embedding_dim",
        "num_class_embeds",
        "projection_class_embeddings_input_dim",
        "encoder_hid_dim",
        "preview_factors",
    }
)


def _replaced(keys: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    config = copy.deepcopy(DEMO)
    target: Any = config
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return config


def _refused(config: Any) -> str:
    with pytest.raises(ModelConfigError) as caught:
        check_config(config, DEMO_CONFIG, Path("demo/config.json"))
    message = str(caught.value)
    assert message.startswith("demo/config.json: ") and "\n" not in message and len(message) < 300
    return message


def test_the_bundled_demo_config_passes() -> None:
    check_config(DEMO, DEMO_CONFIG, DEMO_DIR / "config.json")


def test_the_example_from_the_issue() -> None:
    message = _refused(_replaced(("unet", "block_out_channels", 2), 100000))
    assert message.endswith("unet.block_out_channels[2] = 100000 is above 4096")


def _wrong_types(value: Any) -> list[Any]:
    others = [None, "12", [1], {"a": 1}, 1.5, True, 10**9, -(10**6), 10**400, float("nan"), float("inf")]
    return [o for o in others if type(o) is not type(value) and not (isinstance(value, float) and type(o) is int)]


@settings(max_examples=400, deadline=None)
@given(
    leaf=st.sampled_from(LEAVES),
    kind=st.sampled_from(["huge", "negative", "wrong type"]),
    pick=st.integers(0, 20),
)
def test_every_number_in_the_demo_config_that_is_huge_negative_or_of_the_wrong_type_is_named(
    leaf: tuple[str, tuple[str | int, ...], Any], kind: str, pick: int
) -> None:
    shown, keys, original = leaf
    if kind == "huge":
        bad: Any = 10**9 if pick % 2 else 10**100
    elif kind == "negative":
        bad = -1 if isinstance(original, int) and not isinstance(original, bool) else -(10**6)
    else:
        choices = [c for c in _wrong_types(original) if not (c is None and shown.rsplit(".", 1)[-1] in NULLABLE)]
        bad = choices[pick % len(choices)]
    if isinstance(original, bool) and kind != "wrong type":
        bad = 1  # a number where true/false belongs
    assert shown in _refused(_replaced(keys, bad))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c.pop("position_net"), "position_net is missing"),
        (lambda c: c.__setitem__("position_net", [["text_dim", 64]]), "position_net is a list, expected a table"),
        (lambda c: c.__setitem__("unet", "big"), "unet is text"),
        (lambda c: c["unet"].pop("block_out_channels"), "unet.block_out_channels is missing"),
        (lambda c: c["text"].pop("hidden_size"), "text.hidden_size is missing"),
        (lambda c: c["unet"].__setitem__("num_class_embeds", 10**9), "unet.num_class_embeds"),
        (lambda c: c["unet"].__setitem__("surprise", 1), "unet.surprise is not a setting"),
        (lambda c: c["unet"]["down_block_types"].append("DownBlock2D"), "must be as long as each other"),
        (lambda c: c["unet"].__setitem__("down_block_types", ["Evil"] * 3), "unet.down_block_types[0]"),
        (lambda c: c["unet"].__setitem__("norm_num_groups", 7), "not a multiple of unet.norm_num_groups"),
        (lambda c: c["text"].__setitem__("num_attention_heads", 3), "text.hidden_size = 64 is not a multiple"),
        (lambda c: c["position_net"].__setitem__("seg_size", 100), "position_net.seg_size = 100 is not a multiple"),
        (lambda c: c["position_net"].__setitem__("convnext_dims", [16, 32, 64]), "position_net.convnext_dims has 3"),
        (lambda c: c.__setitem__("preview_factors", [[1, 2]]), "preview_factors"),
        (lambda c: c["fusers"].__setitem__("masked_attention", "yes"), "fusers.masked_attention"),
    ],
)
def test_broken_structure_is_named(change: Any, field: str) -> None:
    config = copy.deepcopy(DEMO)
    change(config)
    assert field in _refused(config)


@pytest.mark.parametrize("top", [[], "x", 3, None])
def test_a_config_that_is_not_a_table_is_refused(top: Any) -> None:
    assert "expected a table" in _refused(top)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not a readable JSON"),
        ("[" * 100_000 + "]" * 100_000, "not a readable JSON"),
        ("x" * (2 << 20), "larger than"),
    ],
)
def test_load_demo_refuses_an_unreadable_config_in_one_line(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ModelConfigError, match=reason):
        load_demo(tmp_path)


@pytest.mark.parametrize(
    "change",
    [lambda c: c.pop("position_net"), lambda c: c.__setitem__("position_net", [["text_dim", 64]])],
)
def test_load_demo_names_the_field_where_it_said_position_net_or_pop(tmp_path: Path, change: Any) -> None:
    config = copy.deepcopy(DEMO)
    change(config)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelConfigError, match="position_net"):
        load_demo(tmp_path)


@pytest.mark.parametrize(
    ("key", "value"),
    [("block_out_channels", [320, 640, 1280, 100000]), ("layers_per_block", -2), ("cross_attention_dim", "768")],
)
def test_sd15_unet_configs_are_checked_too(tmp_path: Path, key: str, value: Any) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**SD15_UNET, key: value}))
    with pytest.raises(WeightFileError, match=key):
        read_model_config(path, UNet2DConditionModel)
    path.write_text(json.dumps(SD15_UNET))
    assert read_model_config(path, UNet2DConditionModel)["block_out_channels"] == [320, 640, 1280, 1280]


def test_a_huge_demo_model_is_refused_within_bounded_memory_and_time(tmp_path: Path) -> None:
    # Before the check, this config allocated 5.75 GB for 53 s before failing.
    for item in DEMO_DIR.iterdir():
        (tmp_path / item.name).symlink_to(item)
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").write_text(json.dumps(_replaced(("unet", "block_out_channels", 2), 100000)))
    script = textwrap.dedent(
        """
        import os, resource, sys
        from pathlib import Path
        from engine.providers import load_demo_model
        from engine.weights_io import WeightFileError
        pages = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limit = pages + (1 << 30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            load_demo_model(Path(sys.argv[1]))
        except WeightFileError as exc:
            print("refused:", exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("unet.block_out_channels[2] = 100000 is above 4096"), done.stdout
