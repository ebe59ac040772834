"""core.ai.embedding_space: the recorded embedding space and the mismatch guard."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.ai.base import EmbeddingSpaceKey
from core.ai.embedding_space import (
    DEFAULT_VECTOR_WEIGHT,
    DENSE_VECTOR_WEIGHT,
    LEXICAL_VECTOR_WEIGHT,
    check_embedding_space,
    current_embedding_space,
    ensure_embedding_space,
    recorded_vector_weight,
    reset_embedding_space,
)
from core.ai.offline import OfflineProvider
from core.platform.config import get_settings
from core.platform.errors import EmbeddingSpaceMismatch

DIM = get_settings().embedding_dim
OPENAI_SPACE = EmbeddingSpaceKey(provider="openai", model="text-embedding-3-small", dimensions=DIM)


@pytest.fixture
def empty_space(database: str) -> Iterator[None]:
    """No space recorded during the test; whatever was recorded before is put back."""
    saved = current_embedding_space()
    reset_embedding_space()
    yield
    reset_embedding_space(space=saved)


def test_first_indexing_records_the_providers_space(empty_space: None) -> None:
    provider = OfflineProvider()
    assert current_embedding_space() is None
    check_embedding_space(provider)  # nothing stored yet: search may go on
    assert current_embedding_space() is None  # and checking did not record anything
    assert ensure_embedding_space(provider) == provider.embedding_space
    assert current_embedding_space() == provider.embedding_space
    ensure_embedding_space(provider)  # idempotent
    check_embedding_space(provider)


def test_another_space_stops_indexing_and_search_naming_both(empty_space: None) -> None:
    ensure_embedding_space(OPENAI_SPACE)
    offline = OfflineProvider()
    for guard in (ensure_embedding_space, check_embedding_space):
        with pytest.raises(EmbeddingSpaceMismatch) as info:
            guard(offline)
        message = str(info.value)
        assert f"openai/text-embedding-3-small ({DIM} dimensions)" in message
        assert f"offline/hashing-v1 ({DIM} dimensions)" in message
        assert "python -m core.cli reindex --all" in message and "restore the settings" in message
    assert current_embedding_space() == OPENAI_SPACE  # the recorded space is untouched


def test_a_different_model_or_size_is_another_space(empty_space: None) -> None:
    ensure_embedding_space(OPENAI_SPACE)
    with pytest.raises(EmbeddingSpaceMismatch, match="text-embedding-3-large"):
        ensure_embedding_space(EmbeddingSpaceKey("openai", "text-embedding-3-large", DIM))


def test_vectors_of_another_length_than_the_column_are_refused(empty_space: None) -> None:
    with pytest.raises(EmbeddingSpaceMismatch, match=f"stores {DIM}-dimensional vectors.*makes 256"):
        ensure_embedding_space(EmbeddingSpaceKey("openai", "text-embedding-3-small", 256))
    assert current_embedding_space() is None


def test_reset_for_a_full_reindex(empty_space: None) -> None:
    ensure_embedding_space(OPENAI_SPACE)
    reset_embedding_space()
    assert current_embedding_space() is None
    offline = OfflineProvider()
    ensure_embedding_space(offline)
    assert current_embedding_space() == offline.embedding_space
    reset_embedding_space(space=OPENAI_SPACE)
    assert current_embedding_space() == OPENAI_SPACE


def test_the_fusion_weight_is_recorded_with_the_space_and_changes_with_the_embedder(empty_space: None) -> None:
    """Hashing vectors repeat what BM25 knows (a small share); a dense model adds meaning."""
    assert recorded_vector_weight() == DEFAULT_VECTOR_WEIGHT  # nothing indexed yet
    ensure_embedding_space(OfflineProvider())
    assert recorded_vector_weight() == LEXICAL_VECTOR_WEIGHT
    reset_embedding_space(space=OPENAI_SPACE)  # a full re-index with another embedder
    assert recorded_vector_weight() == DENSE_VECTOR_WEIGHT
    assert LEXICAL_VECTOR_WEIGHT < DENSE_VECTOR_WEIGHT
