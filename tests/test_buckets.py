"""Aspect-ratio buckets: equal area, sides on the model's stride, nearest by log aspect, cover-then-crop."""
import math

import pytest
import torch

from training.buckets import bucket_for_aspect, make_buckets, nearest_bucket, resize_to_bucket


def test_buckets_have_about_equal_area_and_stride_multiples():
    buckets = make_buckets(256 * 256, 16)
    assert (256, 256) in buckets and len(buckets) >= 7
    for h, w in buckets:
        assert h % 16 == 0 and w % 16 == 0
        assert abs(h * w / (256 * 256) - 1) < 0.12  # rounding to 16 px moves the area a little
    aspects = [w / h for h, w in buckets]
    assert aspects == sorted(aspects) and aspects[0] < 0.5 < 2 < aspects[-1]


def test_buckets_reject_bad_arguments():
    with pytest.raises(ValueError):
        make_buckets(0, 16)
    with pytest.raises(ValueError):
        make_buckets(4096, 16, ratios=[1.0, -2.0])


def test_nearest_bucket_by_log_aspect():
    buckets = make_buckets(256 * 256, 16)
    assert nearest_bucket(720, 1280, buckets) == min(buckets, key=lambda b: abs(b[1] / b[0] - 16 / 9))
    h, w = nearest_bucket(1920, 1080, buckets)  # portrait phone video
    assert h > w and abs(math.log((w / h) / (9 / 16))) < 0.1
    assert nearest_bucket(500, 500, buckets) == (256, 256)
    # symmetric in log space: 2:1 and 1:2 pick mirrored buckets
    assert nearest_bucket(100, 200, buckets) == tuple(reversed(nearest_bucket(200, 100, buckets)))


def test_resize_to_bucket_covers_then_centre_crops():
    # a 90x160 frame with a bright column in its centre: the centre survives, the size is the bucket's
    x = torch.zeros(2, 3, 90, 160)
    x[:, :, :, 78:82] = 1.0
    y = resize_to_bucket(x, (144, 256))
    assert y.shape == (2, 3, 144, 256)
    assert y[:, :, :, 124:132].mean() > 0.5 and y[:, :, :, :100].abs().max() < 1e-6
    z = resize_to_bucket(x, (128, 128))  # square bucket: the sides are cut, not squashed
    assert z.shape == (2, 3, 128, 128) and z[:, :, :, 60:68].mean() > 0.5


def test_bucket_follows_the_content_aspect_not_the_frame():
    """A 2.35:1 film letterboxed in 16:9 goes to the widest bucket; a 4:3 film pillarboxed in 16:9 to the 4:3 one."""
    from training.autoencoder.encode import EncodeSettings, frame_size

    buckets = make_buckets(256 * 256, 16)
    wide, cinema, four_three = (min(buckets, key=lambda b: abs(math.log(b[1] / b[0] / r))) for r in (16 / 9, 21 / 9, 4 / 3))
    assert bucket_for_aspect(2.35, buckets) == cinema != wide == nearest_bucket(720, 1280, buckets)
    settings = EncodeSettings(bucket_area=256 * 256, bucket_multiple=16)
    assert frame_size(720, 1280, settings) == wide  # no box: the frame's shape
    assert frame_size(720, 1280, settings, aspect=2.35) == cinema
    assert frame_size(720, 1280, settings, aspect=4 / 3) == four_three
    assert frame_size(720, 1280, settings, aspect=float("nan")) == wide  # a null/NaN aspect falls back to the frame
    with pytest.raises(ValueError):
        bucket_for_aspect(0.0, buckets)


def test_encode_buckets_by_content_aspect(tmp_path):
    """A 16:9 frame holding a 2.35:1 picture (black bars): encoded in the 21:9 bucket; without a box, by the frame."""
    from _barred_video import barred_manifest, write_barred
    from test_autoencoder_encode import _checkpoint
    from training.autoencoder.encode import encode_manifest

    import schemas

    video = write_barred(tmp_path / "scope.mp4", seed=4, top=24, left=0, width=256, height=108, n=10)  # 256x156
    ck = _checkpoint(tmp_path / "a.pt", 0)
    buckets = make_buckets(48 * 48, 8)
    rows = {}
    for name, box in (("boxed", (0, 24, 256, 108)), ("nobox", None)):
        manifest = barred_manifest(tmp_path / name, video, box, (256, 156), end=10)
        out = str(tmp_path / name / "latents")
        assert encode_manifest(manifest, ck, out, fps=5.0, frames=2, bucket_area=48 * 48, bucket_multiple=8,
                               progress=False)["encoded"] == 1
        rows[name] = schemas.read_table(f"{out}/latents.parquet", "latents").to_pylist()[0]
    assert (rows["boxed"]["height"], rows["boxed"]["width"]) == bucket_for_aspect(256 / 108, buckets)
    assert (rows["nobox"]["height"], rows["nobox"]["width"]) == nearest_bucket(156, 256, buckets)
    assert rows["boxed"]["width"] / rows["boxed"]["height"] > rows["nobox"]["width"] / rows["nobox"]["height"]
