"""A toy *pixel* video set with known structure, for checking what the DiT learns by eye and by statistics.

Each clip: `frames` RGB frames of `size`×`size` pixels in [-1, 1] on a plain grey background, with 1-3 shapes
(4×4 squares or discs of diameter 5), each a palette colour, each moving in a straight line at an integer speed
(0 or 1 px/frame) right, left, down or up. Shapes stay inside the frame and never touch (their boxes keep a
1-pixel gap in every frame), so a frame's connected components are exactly its shapes. The clips are written
in the real latents contract (`toy.write_latents`): the DiT trains on the pixels as a 3-channel "latent", so the
samples need no decoder and a person can look at them directly.
"""
from dataclasses import dataclass
from pathlib import Path

import torch

from training.diffusion.toy import write_latents

BACKGROUND = (77 / 255,) * 3  # RGB in [0, 1]: an exact 8-bit grey (0.3 was 76.5, on a rounding boundary, so noise
# of any size flipped sampled backgrounds between 76 and 77 frame to frame, which the motion scorer reads as motion)
PALETTE = {"red": (0.95, 0.2, 0.15), "green": (0.2, 0.85, 0.25), "blue": (0.2, 0.35, 0.95)}
SPEEDS = (0, 1)  # px/frame
DIRECTIONS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # (dx, dy): right, left, down, up
COUNTS = (1, 2, 3)
SHAPES = {"square": 4, "disc": 5}  # bounding-box side, px


@dataclass(frozen=True)
class Shape:
    kind: str  # "square" | "disc"
    colour: str  # a PALETTE key
    x: int  # top-left of the bounding box at frame 0, px
    y: int
    vx: int  # px/frame
    vy: int

    def box(self, t: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the bounding box at frame t, exclusive end."""
        s = SHAPES[self.kind]
        x, y = self.x + self.vx * t, self.y + self.vy * t
        return x, y, x + s, y + s


def _mask(shape: Shape, t: int, size: int) -> torch.Tensor:
    """(size, size) bool: the shape's pixels at frame t."""
    x0, y0, x1, y1 = shape.box(t)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    inside = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    if shape.kind == "disc":  # pixel centres within radius 2.5 of the box centre: a 21-pixel disc
        cx, cy, r = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2, SHAPES["disc"] / 2
        inside &= (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    return inside


def render(shapes: list[Shape], frames: int = 8, size: int = 16) -> torch.Tensor:
    """(3, frames, size, size) clip in [-1, 1]."""
    clip = torch.tensor(BACKGROUND).reshape(3, 1, 1, 1).expand(3, frames, size, size).clone()
    for s in shapes:
        colour = torch.tensor(PALETTE[s.colour]).reshape(3, 1, 1)
        for t in range(frames):
            m = _mask(s, t, size)
            clip[:, t] = torch.where(m, colour, clip[:, t])
    return clip * 2 - 1


def _apart(a: Shape, b: Shape, frames: int) -> bool:
    """Boxes at least one pixel apart in every frame (so 8-connected components never merge)."""
    for t in range(frames):
        ax0, ay0, ax1, ay1 = a.box(t)
        bx0, by0, bx1, by1 = b.box(t)
        if ax0 <= bx1 and bx0 <= ax1 and ay0 <= by1 and by0 <= ay1:  # gap < 1 px on both axes
            return False
    return True


def random_shapes(g: torch.Generator, frames: int = 8, size: int = 16) -> list[Shape]:
    """1-3 shapes, uniform count, kind, colour, speed and direction; positions uniform among those that keep every
    shape inside the frame and apart from the others (rejection sampling)."""
    def pick(seq):
        return seq[int(torch.randint(len(seq), (), generator=g))]

    while True:
        n, shapes = pick(COUNTS), []
        for _ in range(n):
            kind, colour, speed, (dx, dy) = pick(list(SHAPES)), pick(list(PALETTE)), pick(SPEEDS), pick(DIRECTIONS)
            vx, vy = dx * speed, dy * speed
            for _ in range(50):
                x = _start(g, size, SHAPES[kind], vx * (frames - 1))
                y = _start(g, size, SHAPES[kind], vy * (frames - 1))
                cand = Shape(kind, colour, x, y, vx, vy)
                if all(_apart(cand, o, frames) for o in shapes):
                    shapes.append(cand)
                    break
            else:
                break  # no room: draw the whole clip again (keeps the count uniform)
        if len(shapes) == n:
            return shapes


def _start(g: torch.Generator, size: int, side: int, travel: int) -> int:
    """A start coordinate keeping [start, start + side) + travel inside [0, size)."""
    lo, hi = max(0, -travel), size - side - max(0, travel)
    return lo + int(torch.randint(hi - lo + 1, (), generator=g))


def toy_clips(n: int, frames: int = 8, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, list[list[Shape]]]:
    """n clips (n, 3, frames, size, size) in [-1, 1] and the shapes in each."""
    g = torch.Generator().manual_seed(seed)
    specs = [random_shapes(g, frames, size) for _ in range(n)]
    return torch.stack([render(s, frames, size) for s in specs]), specs


def write_toy_video_latents(out_dir: str | Path, clips: torch.Tensor, fps: float = 8.0) -> Path:
    """The clips as a latents folder (pixels as a 3-channel latent, posterior std 0: the exact pixels), no conditions.

    A posterior std is noise the model learns to generate: 0.01 (1.3 grey levels) made a perfect model's samples
    read ~0.2 diag/s on the motion scorer, twice the data's mean motion."""
    n, _, _, h, w = clips.shape
    return write_latents(out_dir, [{"mean": c, "std": 0.0, "fps": fps, "height": h, "width": w} for c in clips],
                         ae_hash="pixels")
