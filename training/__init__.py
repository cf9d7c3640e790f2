"""Torch: datasets from manifests, autoencoder, diffusion. Imports only schemas/ from this project."""
