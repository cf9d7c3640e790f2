"""64-bit DCT perceptual hash (pHash) of frames whose 8 square symmetries are bit operations.

The hash follows imagehash.phash: grey, resize to 32x32, 2-D DCT, keep the
top-left 8x8 low frequencies, one bit per coefficient. Two changes make it
survive re-publishing:

- Dark borders (letterbox / pillarbox bars) are cropped before resizing, so
  a letterboxed copy hashes the picture, not the bars.
- Each AC bit is the coefficient's sign (C > 0) instead of C > median. The
  DCT-II basis gives, for an N x N image, C'[v, u] = (-1)^u C[v, u] under a
  left-right mirror, (-1)^v C[v, u] under an up-down flip and C[u, v] under
  transposition, so with sign bits the hash of any 90° rotation or mirror of
  a frame is a fixed XOR/permutation of the frame's hash (`d4_variants`);
  the dedup index compares all 8 without decoding anything again. A median
  threshold would move with the flipped signs and break this.

The DC bit is always 1; a flat frame (black, a single colour) has no
structure to hash and gets the hash 0, which matchers can skip.

Region hashes (`region_hashes`) are the same hash of centred crops of the picture
(REGION_FRACS of its width and height). A re-upload edits a frame locally or
reframes it: a corner logo or burned-in subtitles leave the centre alone, a crop
zoomed back to full size shows a centre crop of the source, a picture-in-picture
on a blurred background holds the whole source in its centre. A centred crop
commutes with every rotation and mirror, so `d4_variants` applies to region
hashes unchanged, and the edit-tolerant matcher (curation/dedup/segments.py)
compares any region of one video with any region of another.
"""
import cv2
import numpy as np

from curation.quality import dark_bars

_HASH_SIZE = 8  # 8x8 low-frequency block -> 64 bits
_DCT_SIZE = 32  # grey image size fed to the DCT
_BIT_WEIGHTS = np.array([1 << (63 - i) for i in range(64)], dtype=np.uint64)  # coefficient (v, u) -> bit 63 - (8v + u)
BORDER_LUMA = 24  # rows/columns whose brightest pixel is below this (0..255) are letterbox bars
FLAT_STD = 2.0  # grey levels: a 32x32 thumbnail with less spread than this is flat (hash 0)
FLAT_HASH = 0
REGION_FRACS = (0.9, 0.8, 0.7, 0.6, 0.5)  # centred crops (share of width and height) hashed by region_hashes
REGION_FLAT_STD = 8.0  # grey levels: a region this plain (a fade, a sky, a logo on a flat frame) gets FLAT_HASH; it
#                        would otherwise be matched, through its few edges, with any other region as plain


def dark_border_box(gray: np.ndarray, luma: int = BORDER_LUMA) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) px bounds of the picture inside uniform dark bars, end exclusive
    (the whole image when everything is dark)."""
    h, w = gray.shape
    top, bottom, left, right = dark_bars(gray, luma)  # a bar line: its brightest pixel below luma
    if top == h:  # no pixel reaches luma: no picture to find
        return 0, h, 0, w
    return top, h - bottom, left, w - right


def crop_dark_borders(gray: np.ndarray, luma: int = BORDER_LUMA) -> np.ndarray:
    """The image without uniform dark bars on its edges (all of it when everything is dark)."""
    top, bottom, left, right = dark_border_box(gray, luma)
    return gray[top:bottom, left:right]


def _picture(rgb_or_gray: np.ndarray) -> np.ndarray:
    """The grey picture of an RGB (H, W, 3) or grey (H, W) uint8 image, inside its dark bars."""
    img = np.asarray(rgb_or_gray)
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"phash expects an (H, W) or (H, W, 3) image, got shape {np.shape(rgb_or_gray)}")
    return crop_dark_borders(img)


def _dct_hash(gray: np.ndarray, flat_std: float = FLAT_STD) -> int:
    """The sign-bit DCT hash of a grey image (see the module docstring); FLAT_HASH below flat_std."""
    # INTER_AREA averages pixels (anti-aliasing), like PIL's ANTIALIAS in imagehash.
    small = cv2.resize(gray.astype(np.float32), (_DCT_SIZE, _DCT_SIZE), interpolation=cv2.INTER_AREA)
    if float(small.std()) < flat_std:
        return FLAT_HASH
    low = cv2.dct(small)[:_HASH_SIZE, :_HASH_SIZE].ravel()  # (64,), row-major (v, u), DC first
    bits = low > 0
    bits[0] = True  # DC: mean brightness, always positive
    return int(np.sum(_BIT_WEIGHTS[bits], dtype=np.uint64))


def phash(rgb_or_gray: np.ndarray) -> int:
    """64-bit DCT perceptual hash of an RGB (H, W, 3) or grey (H, W) uint8 image; fits uint64."""
    return _dct_hash(_picture(rgb_or_gray))


def centre_crop(img: np.ndarray, frac: float) -> np.ndarray:
    """The centred crop of `img` covering `frac` of its height and width (at least one pixel each way)."""
    h, w = img.shape[:2]
    ch, cw = max(1, round(h * frac)), max(1, round(w * frac))
    y, x = (h - ch) // 2, (w - cw) // 2
    return img[y:y + ch, x:x + cw]


class FrameHashes(int):
    """A frame's phash (the int itself) carrying the hashes of its centred crops (`regions`, REGION_FRACS order)."""

    regions: list[int]

    def __new__(cls, whole: int, regions: list[int]) -> "FrameHashes":
        out = super().__new__(cls, whole)
        out.regions = regions
        return out

    def __reduce__(self):  # pickled (a row sent to another process) as the plain hash
        return int, (int(self),)


def frame_hashes(rgb_or_gray: np.ndarray) -> FrameHashes:
    """phash of the picture, with its region hashes attached (one grey conversion and bar crop for all)."""
    gray = _picture(rgb_or_gray)
    return FrameHashes(_dct_hash(gray), [_dct_hash(centre_crop(gray, f), REGION_FLAT_STD) for f in REGION_FRACS])


def region_hashes(rgb_or_gray: np.ndarray, fracs: tuple[float, ...] = REGION_FRACS) -> list[int]:
    """phash of each centred crop in `fracs` of the picture (inside its dark bars), in that order."""
    gray = _picture(rgb_or_gray)
    return [_dct_hash(centre_crop(gray, f), REGION_FLAT_STD) for f in fracs]


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes."""
    return int((int(a) ^ int(b)).bit_count())


def _bits(h: np.ndarray) -> np.ndarray:
    """(..., 8, 8) bool: bit (v, u) of each uint64 hash."""
    raw = np.asarray(h, np.uint64)[..., None].astype(">u8").view(np.uint8)  # (..., 8) bytes, big-endian
    return np.unpackbits(raw, axis=-1).reshape(*raw.shape[:-1], 8, 8).astype(bool)


def _pack(bits: np.ndarray) -> np.ndarray:
    packed = np.packbits(bits.reshape(*bits.shape[:-2], 64), axis=-1)  # (..., 8) uint8
    return np.ascontiguousarray(packed).view(">u8")[..., 0].astype(np.uint64)


_ODD = np.arange(_HASH_SIZE) % 2 == 1
MIRROR_LR = np.zeros((8, 8), bool)
MIRROR_LR[:, _ODD] = True  # u odd: sign flips under a left-right mirror
FLIP_UD = np.zeros((8, 8), bool)
FLIP_UD[_ODD, :] = True  # v odd: sign flips under an up-down flip

# The 8 symmetries of the square as (transpose first?, then mirror left-right?, flip up-down?).
# Index 0 is the identity; rotations are transpose + one flip, 180° is both flips.
D4 = tuple((t, lr, ud) for t in (False, True) for lr in (False, True) for ud in (False, True))
# What each symmetry does to a picture, in D4's order (5 and 6 are each other's inverse, the others their own).
D4_NAMES = ("as is", "flipped upside down", "mirrored", "turned 180°", "transposed", "turned 90° counter-clockwise",
            "turned 90° clockwise", "anti-transposed")


# Bit masks of the sign flips in the hash's bit layout (coefficient (v, u) at bit 63 - (8v + u): row v is a byte,
# u = 0 its top bit): a left-right mirror flips the odd columns u, an up-down flip the odd rows v.
_LR_MASK = np.uint64(0x5555555555555555)
_UD_MASK = np.uint64(0x00FF00FF00FF00FF)
_U = np.uint64


def _transpose_bits(x: np.ndarray) -> np.ndarray:
    """The 8x8 bit matrix of each uint64 transposed (bit (v, u) -> (u, v)): three delta swaps (Hacker's Delight
    7-3, transpose8), no unpacking into bits."""
    t = (x ^ (x >> _U(7))) & _U(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << _U(7))
    t = (x ^ (x >> _U(14))) & _U(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << _U(14))
    t = (x ^ (x >> _U(28))) & _U(0x00000000F0F0F0F0)
    return x ^ t ^ (t << _U(28))


def d4_variant(h: np.ndarray, g: int) -> np.ndarray:
    """The hash of the frames hashed in `h` turned by symmetry D4[g] (uint64, h's shape); FLAT_HASH stays flat.
    Bit operations only: ~8 B of memory per hash, so a matcher can turn one slice of a large table at a time."""
    h = np.asarray(h, np.uint64)
    transpose, lr, ud = D4[g]
    x = _transpose_bits(h) if transpose else h
    mask = (int(_LR_MASK) if lr else 0) ^ (int(_UD_MASK) if ud else 0)  # the DC bit (0, 0) is in neither
    if mask:
        x = x ^ _U(mask)
    if transpose or mask:
        x = np.where(h == FLAT_HASH, h, x)
    return x


def d4_variants(h: np.ndarray) -> np.ndarray:
    """(..., 8) uint64: the hash of every rotation/mirror of the frames hashed in `h` (index 0 = h itself)."""
    h = np.asarray(h, np.uint64)
    return np.stack([d4_variant(h, g) for g in range(len(D4))], axis=-1)
