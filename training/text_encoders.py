"""Text encoders for caption conditioning: per-token embeddings and a padding mask for each caption.

Two families, each read from a path (weights are never downloaded here):
- "t5": a `transformers` T5EncoderModel and its tokenizer saved in one folder (`save_pretrained`), e.g. a
  published T5 / Flan-T5 / UMT5 encoder (Imagen, PixArt-α, Wan 2.1 condition on T5 tokens);
- "open_clip": the text tower of an open_clip checkpoint (`model_name` + checkpoint file, optionally a JSON
  architecture file for custom models), token states after the final LayerNorm (Stable Diffusion's use).

Captions repeat (many windows per clip, many clips per caption), so `encode_captions` runs each distinct
caption once; training encodes its table's captions at start and looks rows up by index.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

KINDS = ("t5", "open_clip")


@dataclass
class TextEncoderConfig:
    """Which text encoder, from where; stored in diffusion checkpoints so `sample --prompt` rebuilds it."""

    kind: str  # "t5" or "open_clip"
    path: str  # t5: folder with the encoder and tokenizer; open_clip: checkpoint file (.pt/.bin/.safetensors)
    model_name: str | None = None  # open_clip architecture name (e.g. "ViT-B-32"); required for open_clip
    model_config: str | None = None  # open_clip: JSON architecture file registered under model_name (custom models)
    max_length: int = 64  # tokens per caption, padding included (t5); open_clip uses its own context length
    batch_size: int = 64  # captions per encoder forward pass
    device: str = "cpu"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"text encoder kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "open_clip" and not self.model_name:
            raise ValueError("text encoder kind open_clip needs model_name (an open_clip architecture)")
        if not Path(self.path).exists():
            raise ValueError(f"text encoder path {self.path!r} does not exist")

    @classmethod
    def from_dict(cls, d: dict) -> "TextEncoderConfig":
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


class TextEncoder:
    """`encode(captions) -> (tokens (B, L, D) float32, mask (B, L) bool)`; `dim` = D. Loads the model once."""

    def __init__(self, cfg: TextEncoderConfig):
        self.cfg = cfg
        if cfg.kind == "t5":
            from transformers import AutoTokenizer, T5EncoderModel

            try:
                self.tokenizer = AutoTokenizer.from_pretrained(cfg.path)
                self.model = T5EncoderModel.from_pretrained(cfg.path)
            except (OSError, ValueError) as e:
                raise ValueError(f"{cfg.path}: not a T5 encoder folder with a tokenizer ({e})") from e
            self.dim = self.model.config.d_model
        else:
            import open_clip

            if cfg.model_config:  # open_clip finds architectures by JSON file stem in its registry
                d = Path(tempfile.mkdtemp(prefix="vidcurate-oc-cfg-"))
                (d / f"{cfg.model_name}.json").write_text(Path(cfg.model_config).read_text())
                open_clip.add_model_config(d / f"{cfg.model_name}.json")
            self.model = open_clip.create_model(cfg.model_name, pretrained=cfg.path, weights_only=True,
                                                pretrained_image=False, pretrained_text=False,
                                                require_pretrained=True)
            self.tokenizer = open_clip.get_tokenizer(cfg.model_name)
            self.dim = int(self.model.ln_final.normalized_shape[0]) if hasattr(self.model, "ln_final") \
                else int(self.model.text.width)
        self.model = self.model.to(cfg.device).eval().requires_grad_(False)

    @torch.no_grad()
    def encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cfg.kind == "t5":
            t = self.tokenizer(list(captions), padding="max_length", truncation=True, max_length=self.cfg.max_length,
                               return_tensors="pt").to(self.cfg.device)
            mask = t["attention_mask"].bool()  # (B, L)
            h = self.model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).last_hidden_state  # (B, L, D)
        else:
            ids = self.tokenizer(list(captions)).to(self.cfg.device)  # (B, L), 0 = padding
            mask = ids != 0
            h = _open_clip_tokens(self.model, ids)  # (B, L, D)
        return (h.float() * mask.unsqueeze(2)).cpu(), mask.cpu()


def _open_clip_tokens(model, ids: torch.Tensor) -> torch.Tensor:
    """Token states after ln_final: open_clip's encode_text without the pooling and projection."""
    if hasattr(model, "token_embedding"):  # open_clip.CLIP: the text tower is inline
        x = model.token_embedding(ids) + model.positional_embedding  # (B, L, D)
        x = model.transformer(x, attn_mask=model.attn_mask)  # (B, L, D), causal
        return model.ln_final(x)  # (B, L, D)
    text = model.text  # CustomTextCLIP with an open_clip TextTransformer
    text.output_tokens = True
    _, tokens = text(ids)
    return tokens


def encode_captions(encoder: TextEncoder, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Each distinct caption once, in batches: (tokens (n, L, D), mask (n, L)), trimmed to the longest caption."""
    if not captions:
        return torch.zeros(0, 1, encoder.dim), torch.zeros(0, 1, dtype=torch.bool)
    unique = list(dict.fromkeys(captions))
    toks, masks = [], []
    for i in range(0, len(unique), encoder.cfg.batch_size):
        t, m = encoder.encode(unique[i:i + encoder.cfg.batch_size])
        toks.append(t)
        masks.append(m)
    tokens, mask = torch.cat(toks), torch.cat(masks)
    length = max(int(mask.sum(1).max()), 1)
    pos = {c: i for i, c in enumerate(unique)}
    order = torch.tensor([pos[c] for c in captions])
    return tokens[order, :length].contiguous(), mask[order, :length].contiguous()


def lookup(tokens: torch.Tensor, mask: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of the caption table for caption indices idx (B,); -1 (no caption) gives zeros with an empty mask."""
    safe = idx.clamp_min(0)
    has = (idx >= 0).unsqueeze(1)  # (B, 1)
    return tokens[safe] * has.unsqueeze(2), mask[safe] & has  # (B, L, D), (B, L)


def write_tiny_t5(out_dir: str | Path, words: list[str], d_model: int = 32, seed: int = 0) -> Path:
    """A randomly initialised 1-layer T5 encoder and a word-level tokenizer over `words`, saved with
    `save_pretrained` to one folder: loads by path exactly as a published T5 encoder does (tests, demo)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in words:
        vocab.setdefault(w.lower(), len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=len(vocab), d_model=d_model, d_kv=d_model // 2, d_ff=2 * d_model, num_layers=1,
                   num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    out = Path(out_dir)
    T5EncoderModel(cfg).save_pretrained(out)
    fast.save_pretrained(out)
    return out


TINY_OPEN_CLIP = {  # a tiny open_clip architecture for tests (random weights)
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_tiny_open_clip(out_dir: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """A randomly initialised tiny open_clip model: (checkpoint file, architecture JSON) for TextEncoderConfig."""
    import open_clip

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.save(open_clip.model.CLIP(**TINY_OPEN_CLIP).state_dict(), out / "clip.pt")
    (out / "arch.json").write_text(json.dumps(TINY_OPEN_CLIP))
    return out / "clip.pt", out / "arch.json"


__all__ = ["TextEncoderConfig", "TextEncoder", "encode_captions", "lookup", "write_tiny_t5", "write_tiny_open_clip"]
