"""Diffusion on autoencoder latents: EDM objective, DiT denoiser, samplers, training, distillation, evaluation.

Library modules (pure functions and small classes) with thin entry points in `train.py` and `cli.py`,
following k-diffusion's split. Imports only `schemas/` from this project.
"""
