"""The latent autoencoder: train on curated clips, encode them for the diffusion model, evaluate.

    config.py      AEConfig (model/data/loss/train dataclasses), load_config(yaml)
    model.py       build/load AutoencoderKL (our .pt checkpoints or diffusers folders), checkpoint_hash
    data.py        ClipFrames: frames of manifest clips, split by clip across ranks and workers
    losses.py      L1, perceptual (LPIPS from a file, else multi-scale gradient), KL, PatchGAN, EQ-VAE transforms
    train.py       train_autoencoder(cfg) -> checkpoint path (exact resume)
    encode.py      encode_manifest(...) -> latents table + safetensors shards + stats.json
    encode_ray.py  the same with a Ray actor pool
    evaluate.py    held-out PSNR/SSIM, equivariance, latent stats, RAPSD
    cli.py         add_parsers(subparsers): `train-ae`, `encode`
"""
