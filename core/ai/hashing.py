"""Deterministic lexical embeddings by signed feature hashing (the offline embedder).

Each text becomes the counts of its lower-cased, lightly stemmed content words and of
their bigrams, hashed into `dim` buckets with a random-looking sign, then L2-normalised.
Texts that share words get a positive cosine; unrelated texts are near 0. The hash is
blake2b, so vectors are identical across processes, machines and Python versions.

Change HASHING_MODEL when the algorithm changes: stored vectors are then in another
embedding space and must be rebuilt.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

HASHING_MODEL = "hashing-v1"


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


_WORD = re.compile(r"[^\W_]+")  # letters and digits; "year's" -> "year", "s" (a stopword)
_BIGRAM_WEIGHT = 0.5
_CACHE_LIMIT = 2_000_000
_BATCH = 512  # texts accumulated per bincount, bounds memory at _BATCH * dim floats

STOPWORDS = _word_set(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why with would you your yours yourself yourselves also okay ok yeah uh um oh s t d ll m re ve"""
)


# token -> 64-bit hash of its stem, or 0 for a stopword. Words repeat a lot, so hashing each
# distinct word once keeps the embedder fast; the cache is cleared when it grows too big.
_token_hash: dict[str, int] = {}


def stem(word: str) -> str:
    """A light suffix stripper: meetings -> meeting, decided -> decid, budgets -> budget.

    Deliberately crude and stable; it only has to map a word's common forms together.
    """
    if len(word) <= 3:
        return word
    for suffix in ("ational", "ization", "ations", "ation", "ness", "ments", "ment", "ings", "ing", "edly", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    else:
        if word.endswith("ies") and len(word) > 4:
            word = word[:-3] + "y"
        elif word.endswith("es") and word[-3:-2] in ("s", "x", "z", "h") and len(word) > 4:
            word = word[:-2]
        elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
            word = word[:-1]
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """Lower-cased, stemmed words of `text` without stopwords, in order."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def _hash_token(token: str) -> int:
    value = _token_hash.get(token)
    if value is None:
        if token in STOPWORDS:
            value = 0
        else:
            digest = hashlib.blake2b(stem(token).encode("utf-8"), digest_size=8).digest()
            value = int.from_bytes(digest, "little") or 1
        if len(_token_hash) >= _CACHE_LIMIT:
            _token_hash.clear()
        _token_hash[token] = value
    return value


def _hashes(words: list[str]) -> list[int]:
    """Hashes of `words` from the cache, hashing each word not seen before once."""
    try:
        return list(map(_token_hash.__getitem__, words))
    except KeyError:  # new words in this batch: hash each once, then look up again
        for word in set(words).difference(_token_hash):
            _hash_token(word)
    try:
        return list(map(_token_hash.__getitem__, words))
    except KeyError:  # the cache was cleared meanwhile (full, or another thread)
        return [_hash_token(word) for word in words]


def _mix(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Order-sensitive 64-bit combination of two hash arrays (splitmix64 finaliser)."""
    with np.errstate(over="ignore"):
        z = first * np.uint64(0x9E3779B97F4A7C15) + (second ^ np.uint64(0xBF58476D1CE4E5B9))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hashing_embed(texts: Sequence[str], dim: int) -> np.ndarray:
    """Embed `texts` as an (n, dim) float32 array of L2-normalised rows. Pure and deterministic.

    A text with no content words (empty, only stopwords or punctuation) maps to the zero
    vector, which matches nothing.
    """
    if dim <= 0:
        raise ValueError("dim must be positive")
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for start in range(0, len(texts), _BATCH):
        batch = texts[start : start + _BATCH]
        words: list[str] = []
        lengths: list[int] = []
        for text in batch:
            found = _WORD.findall(text.lower())
            words.extend(found)
            lengths.append(len(found))
        if not words:
            continue
        h = np.fromiter(_hashes(words), dtype=np.uint64, count=len(words))
        doc = np.repeat(np.arange(len(batch), dtype=np.int64), lengths)
        keep = h != 0  # stopwords
        h, doc = h[keep], doc[keep]
        if not len(h):
            continue
        # Bigrams of consecutive content words of the same text.
        same = doc[1:] == doc[:-1]
        bigram = _mix(h[:-1][same], h[1:][same])
        features = np.concatenate([h, bigram])
        docs = np.concatenate([doc, doc[1:][same]])
        weights = np.concatenate(
            [np.ones(len(h), dtype=np.float64), np.full(len(bigram), _BIGRAM_WEIGHT, dtype=np.float64)]
        )
        buckets = (features % np.uint64(dim)).astype(np.int64)
        signs = np.where((features >> np.uint64(63)) == 1, -1.0, 1.0)
        flat = np.bincount(docs * dim + buckets, weights=weights * signs, minlength=len(batch) * dim)
        block = flat.reshape(len(batch), dim)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        np.divide(block, norms, out=block, where=norms > 0)
        out[start : start + len(batch)] = block
    return out
