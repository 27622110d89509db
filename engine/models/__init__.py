"""InstanceDiffusion's additions to the SD1.5 UNet, built on diffusers: UniFusion, fusers, ScaleU."""
