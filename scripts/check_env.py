"""Fail the set-up when the environment is not what vidcurate needs (one OpenCV, a torch/torchvision pair)."""
import importlib.metadata as md
import sys

opencvs = sorted({d.metadata["Name"] for d in md.distributions() if (d.metadata["Name"] or "").lower().startswith("opencv")})
if opencvs != ["opencv-python-headless"]:
    sys.exit(f"expected exactly one OpenCV distribution (opencv-python-headless), found {opencvs}")

import cv2  # noqa: E402
import open_clip  # noqa: E402,F401  (imports torchvision: fails when the torch/torchvision pair does not match)
import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision.ops import nms  # noqa: E402

nms(torch.zeros(1, 4), torch.zeros(1), 0.5)  # the operator that a mismatched pair lacks
print(f"environment ok: torch {torch.__version__}, torchvision {torchvision.__version__}, OpenCV {cv2.__version__} (headless)")
