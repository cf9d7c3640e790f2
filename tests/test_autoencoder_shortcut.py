"""DC-AE-style shortcuts on the causal video autoencoder: at init the model is the fixed space-to-channel codec
(frames after the first: exactly eval-ae's bicubic bar), training moves it, and it saves and loads as our class."""
import torch
import torch.nn.functional as F

from training.autoencoder.config import ModelConfig
from training.autoencoder.evaluate import bicubic_psnr, psnr
from training.autoencoder.model import build_autoencoder, decode_video, encode_video, export_diffusers, load_autoencoder
from training.autoencoder.model import frames_of
from training.autoencoder.shortcut import ShortcutKL, ShortcutWanVAE, shortcut_down, shortcut_up

GEOMETRY = dict(block_out_channels=(8, 16, 16, 16), latent_channels=16, layers_per_block=1)


def _clip(frames: int = 9, size: int = 64) -> torch.Tensor:
    """A smooth picture panning 2 px per frame, (1, 3, T, H, W) in [-1, 1]."""
    t = torch.linspace(0, 1, size)
    img = torch.stack([torch.sin(6 * t)[None] * torch.cos(4 * t)[:, None], torch.cos(5 * t)[None].expand(size, size),
                       torch.sin(3 * t)[:, None].expand(size, size)])
    return torch.stack([torch.roll(img, 2 * i, dims=2) for i in range(frames)], 1)[None]


def test_the_shortcut_is_a_codec_of_its_own_and_keeps_the_latent_size():
    x = _clip()
    for temporal in (1, 2, 4):
        z = shortcut_down(x, 8, temporal, 16)
        assert z.shape == (1, 16, 1 + 8 // temporal, 8, 8) and not z[:, 12:].any()
        y = shortcut_up(z, 8, temporal)
        assert y.shape == x.shape
        frames = frames_of(x)[1:]
        bar = F.interpolate(F.interpolate(frames, size=(8, 8), mode="area"), size=(64, 64), mode="bicubic", align_corners=False)
        if temporal > 1:  # later frames: each frame's 1/8 means, bicubic up: the bar itself
            assert torch.allclose(frames_of(y)[1:], bar, atol=1e-5)
        assert psnr(frames_of(y)[:1], frames_of(x)[:1]) > psnr(bar[:1], frames[:1])  # frame 0: quarter resolution


def test_at_init_the_model_meets_the_bicubic_bar_and_training_moves_it(tmp_path):
    torch.manual_seed(0)
    ae = build_autoencoder(ModelConfig(**GEOMETRY, shortcut=True))
    assert isinstance(ae, ShortcutWanVAE)
    x = _clip()
    mean, _ = encode_video(ae, x)
    y = decode_video(ae, mean)
    bar = bicubic_psnr(frames_of(x), (8, 8))
    assert (psnr(frames_of(y.clamp(-1, 1)), frames_of(x)) >= bar - 1e-3).all()
    plain = build_autoencoder(ModelConfig(**GEOMETRY))
    assert psnr(frames_of(decode_video(plain, encode_video(plain, x)[0])), frames_of(x)).mean() < bar.mean() - 10
    opt = torch.optim.AdamW(ae.parameters(), 1e-2)
    before = {k: v.clone() for k, v in ae.state_dict().items()}
    for _ in range(2):
        loss = (decode_video(ae, ae.encode(x).latent_dist.sample()) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(before["decoder.conv_out.weight"], ae.state_dict()["decoder.conv_out.weight"])
    # our class survives a training checkpoint and a diffusers folder
    torch.save({"ae_class": type(ae).__name__, "ae_config": dict(ae.config), "model": ae.state_dict()}, tmp_path / "ae.pt")
    back = load_autoencoder(tmp_path / "ae.pt")
    assert isinstance(back, ShortcutWanVAE)
    folder = export_diffusers(tmp_path / "ae.pt", tmp_path / "folder")
    again = load_autoencoder(folder)
    assert isinstance(again, ShortcutWanVAE)
    with torch.no_grad():
        assert torch.allclose(decode_video(again, encode_video(again, x)[0]), decode_video(back, encode_video(back, x)[0]), atol=1e-5)


def test_the_2d_shortcut_model_is_the_bicubic_bar_at_init_and_round_trips(tmp_path):
    torch.manual_seed(0)
    ae = build_autoencoder(ModelConfig(kind="image", block_out_channels=(8, 16, 16, 16), latent_channels=4,
                                       layers_per_block=1, norm_num_groups=8, shortcut=True, init_logvar=-10.0))
    assert isinstance(ae, ShortcutKL)
    x = _clip(frames=3)
    mean, _ = encode_video(ae, x)
    assert mean.shape == (1, 4, 3, 8, 8)
    y = decode_video(ae, mean)
    assert torch.allclose(psnr(frames_of(y), frames_of(x)), bicubic_psnr(frames_of(x), (8, 8)), atol=1e-3)
    torch.save({"ae_class": type(ae).__name__, "ae_config": dict(ae.config), "model": ae.state_dict()}, tmp_path / "ae.pt")
    assert isinstance(load_autoencoder(tmp_path / "ae.pt"), ShortcutKL)
