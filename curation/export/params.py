"""Export settings: codec, quality, shard size, workers; every value with its default and unit."""
from dataclasses import asdict, dataclass

FORMATS = ("webdataset", "csv")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


class ExportConfigError(ValueError):
    """An export setting is out of range; the message names it."""


@dataclass(frozen=True)
class ExportParams:
    format: str = "webdataset"  # webdataset | csv
    shard_size: int = 1 << 30  # bytes per WebDataset tar shard: a shard closes before a sample would take it past
    # this, so only a single sample larger than this makes a larger shard
    crf: int = 18  # libx264 constant rate factor (0 lossless .. 51; 18 ~ visually lossless)
    preset: str = "fast"  # libx264 speed/size trade-off (same quality at a given crf)
    encoder_threads: int = 1  # libx264 threads per clip; fixed so the bytes do not depend on the machine's cores
    audio: bool = True  # keep the source's first audio track, trimmed to the clip's span (AAC)
    audio_bitrate_per_channel: int = 64_000  # AAC bits/s per channel (stereo 128 kbit/s, 5.1 384 kbit/s)
    workers: int = 1  # processes encoding videos side by side (1 = in this process)
    crop_to_content: bool = True  # crop each clip to its content box (bars cut off); False keeps the full frame

    def __post_init__(self):
        checks = [
            (self.format in FORMATS, f"format must be one of {', '.join(FORMATS)}, got {self.format!r}"),
            (self.shard_size >= 1, f"shard size must be a positive number of bytes, got {self.shard_size}"),
            (0 <= self.crf <= 51, f"crf must be 0..51, got {self.crf}"),
            (self.preset in X264_PRESETS, f"preset must be one of {', '.join(X264_PRESETS)}, got {self.preset!r}"),
            (1 <= self.encoder_threads <= 64, f"encoder threads must be 1..64, got {self.encoder_threads}"),
            (8_000 <= self.audio_bitrate_per_channel <= 320_000,
             f"audio bitrate per channel must be 8000..320000 bits/s, got {self.audio_bitrate_per_channel}"),
            (1 <= self.workers <= 256, f"workers must be 1..256, got {self.workers}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ExportConfigError(message)

    def output_settings(self) -> dict:
        """The settings that decide the exported bytes (a destination made with others is refused)."""
        d = asdict(self)
        d.pop("workers")  # parallelism does not change the bytes
        if self.format != "webdataset":
            d.pop("shard_size")
        return d
