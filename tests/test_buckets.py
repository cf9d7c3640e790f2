"""Aspect-ratio buckets: equal area, sides on the model's stride, nearest by log aspect, cover-then-crop."""
import math

import pytest
import torch

from training.buckets import make_buckets, nearest_bucket, resize_to_bucket


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
