"""Diffusion on video autoencoder latents (C, T', H', W'): EDM / rectified-flow objectives, a spatiotemporal DiT
(optionally caption-conditioned), samplers, training, distillation, evaluation, samples as mp4.

Library modules (pure functions and small classes) with thin entry points in `train.py` and `cli.py`,
following k-diffusion's split. Imports only `schemas/` from this project.
"""
