"""The latent autoencoder: train on curated clips, encode them for the diffusion model, evaluate.

    config.py      AEConfig (model/data/loss/train dataclasses), load_config(yaml); model.kind video | image
    model.py       build/load the causal video VAE (AutoencoderKLWan) or the 2-D AutoencoderKL, any diffusers
                   VAE folder by its class name; encode_video / decode_video: (N, 3, T, H, W) <-> (N, C, T', H', W')
    data.py        ClipWindows: windows of T frames at a target fps, split by clip across ranks and workers
    losses.py      L1, perceptual (LPIPS from a file, else multi-scale gradient), KL, PatchGAN, EQ-VAE and
                   diffusability transforms (every frame alike; causal halving of time)
    train.py       train_autoencoder(cfg) -> checkpoint path (exact resume)
    encode.py      encode_manifest(...) -> latents table (one row per window) + safetensors shards + stats.json
    encode_ray.py  the same with a Ray actor pool
    evaluate.py    held-out per-frame PSNR/SSIM, flicker, compression, equivariance, latent stats, RAPSD slopes
    cli.py         add_parsers(subparsers): `train-ae`, `encode`, `eval-ae`
"""
