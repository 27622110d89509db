"""Sampler-level parity with the official PLMSSamplerInst (fixture C): calls, merged and final latents.

Every setting, shape and instance count is read from the fixture file, so another fixture folder of the
same layout (other steps, guidance, alpha, mis, latent size, instances) is checked the same way.
"""

from collections import Counter

import pytest
import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from engine.grounding import InstanceTensors, null_grounding, slot_grounding
from engine.models.builder import position_net_of
from engine.request import Scheduler
from engine.sampler import Chain, SamplerHooks, SamplerSettings, UNetCall, sample
from engine.schedulers import make_scheduler
from tests.engine.parity import assert_close, drops_from_metadata, read_fixture

pytestmark = pytest.mark.slow


def test_parity_sampler_matches_the_official_multi_instance_sampler(recipe_unet: UNet2DConditionModel) -> None:
    fx, meta = read_fixture("fixture_C_sampler.safetensors")
    net = position_net_of(recipe_unet)
    drops = drops_from_metadata(meta, meta["config"].removeprefix("test_"))
    settings = SamplerSettings(
        steps=int(meta["S"]), guidance=float(meta["guidance"]), alpha=float(meta["alpha"]), mis=float(meta["mis"])
    )
    assert settings.mis_steps == int(meta["mis_step"])

    n = fx["inst_text"].shape[0]
    segs = {int(slot): fx["inst_segs_u8"][k].float() for k, slot in enumerate(fx["inst_segs_index"])}
    instances = [
        InstanceTensors(
            text=fx["inst_text"][i],
            box=fx["inst_boxes"][i],
            point=fx["inst_points"][i],
            scribble=fx["inst_scribbles"][i],
            polygon=fx["inst_polygons"][i],
            seg=segs.get(i),
        )
        for i in range(n)
    ]
    side = fx["inst_segs_u8"].shape[-1] if len(segs) else None
    with torch.no_grad():
        tokens = [net(**slot_grounding(instances, net.config, side), drops=drops)] + [
            net(**slot_grounding([inst], net.config, side), drops=drops) for inst in instances
        ]
        null = net(**null_grounding(net.config, seg_side=side), drops=drops)
    full = Chain(fx["context_full"], tokens[0])
    chains = [Chain(fx["context_instance"][k], tokens[k + 1]) for k in range(n)]

    calls: list[UNetCall] = []
    hooks = SamplerHooks(on_unet_call=calls.append)
    with torch.no_grad():
        final = sample(
            recipe_unet,
            make_scheduler(Scheduler.PLMS),
            fx["noise"],
            full,
            chains,
            fx["context_uncond"],
            null,
            settings,
            hooks,
        )

    # The same UNet evaluations: (chain, step, second evaluation, t, cond, fuser scale), and their eps.
    ours: dict[tuple[int, int, int, int, int, float], tuple[torch.Tensor, torch.Tensor]] = {}
    made: list[tuple[int, int, int, int, int, float]] = []
    for call in calls:
        sub = int(call.iteration == 1 and call.step == 0)
        for row, (chain, cond) in enumerate(zip(call.chains, call.conditional, strict=True)):
            key = (chain, call.step, sub, call.timestep, int(cond), float(call.grounded))
            ours[key] = (call.sample[row : row + 1], call.output[row : row + 1])
            made.append(key)
    official = [
        (int(fx["call_chain"][i]), int(fx["call_step"][i]), int(fx["call_sub"][i]), int(fx["call_t"][i]),
         int(fx["call_cond"][i]), float(fx["call_scale"][i]))
        for i in range(fx["call_t"].shape[0])
    ]  # fmt: skip
    assert Counter(made) == Counter(official), "the UNet calls differ from the official sampler's"
    assert len(official) == int(meta["n_unet_calls"])
    for i, key in enumerate(official):
        x, eps = ours[key]
        assert_close(x, fx["call_x"][i], 5e-4, 2e-5, f"call {i} input")
        assert_close(eps, fx["call_eps"][i], 1e-4, 2e-5, f"call {i} eps")

    assert_close(torch.stack(hooks.merged), fx["chain_latents_premerge"], 5e-4, 2e-5, "chain latents before the merge")
    assert_close(torch.stack(hooks.merged).mean(0), fx["x_merged"], 5e-4, 2e-5, "x_merged")
    assert_close(final, fx["x_final"], 1e-3, 2e-5, "x_final")
