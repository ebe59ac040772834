"""Embedding throughput through an API: requests overlap, and stay within the limits the server reports.

Behaviour only, never speed: how many requests the fake server saw at once, which it had to
refuse (429), and whether every vector came back in its text's place. The fake's latency
only gives requests the time to overlap.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from core.access.rbac import Actor
from core.ai.base import UsageContext
from core.ai.hashing import hashing_embed
from core.ai.openai_provider import OpenAIProvider
from core.documents import ingest_paths
from core.documents.indexing import chunks_per_step
from core.platform.config import Settings, get_settings
from core.platform.db import session_scope
from core.platform.models import Document, DocumentChunk
from tests.conftest import unique
from tests.fake_openai import FakeOpenAI
from tests.recording_fixtures import own_embedding_space  # noqa: F401  (fixture)

EMBEDDINGS = "/v1/embeddings"


@pytest.fixture(autouse=True)
def _ledger(database: str) -> None:
    """Every embedding request writes the usage ledger, so these tests need the database."""


def _texts(count: int, words: int = 40) -> list[str]:
    token = unique("w")
    return [" ".join(f"{token} item {i} point {j}" for j in range(words // 4)) for i in range(count)]


def _expected(texts: list[str]) -> np.ndarray:
    return np.asarray(hashing_embed(texts, get_settings().embedding_dim))


def test_one_step_of_a_document_is_enough_for_every_request_in_flight() -> None:
    api = Settings(openai_api_key="sk-x", embedding_batch_size=100, embedding_concurrency=4)
    assert chunks_per_step(api) == 400
    assert chunks_per_step(api.model_copy(update={"embedding_batch_size": 2048})) == 2048
    assert chunks_per_step(api.model_copy(update={"embedding_batch_size": 5000})) == 5000  # never below one batch
    offline = Settings(openai_api_key=None, embedding_batch_size=100, embedding_concurrency=4)
    assert chunks_per_step(offline) == 100  # offline, embedding is this process's CPU: one batch at a time


@pytest.mark.usefixtures("own_embedding_space")  # the API's vectors, not the offline ones stored before
def test_one_large_document_alone_keeps_several_requests_in_flight_and_its_chunks_in_order(
    configure: Any, fake_openai: FakeOpenAI, admin: Actor, tmp_path: Path
) -> None:
    configure(embedding_batch_size="4", embedding_concurrency="4")
    fake_openai.embedding_latency = 0.2  # time for requests to overlap, if they are sent together
    word = unique("chapter")
    path = tmp_path / "handbook.md"
    path.write_text(" ".join(f"The {word} rule {i} applies to team {i % 9} on day {i}." for i in range(1500)))

    (result,) = ingest_paths(actor=admin, paths=[path])

    assert result.status == "COMPLETED" and result.chunks >= 12
    calls = fake_openai.calls(EMBEDDINGS)
    assert all(call.status == 200 for call in calls) and max(call.inputs or 0 for call in calls) <= 4
    assert 2 <= fake_openai.embeddings_in_flight_peak <= 4
    with session_scope() as session:
        document_id = result.outcome.document_id
        generation = session.scalar(select(Document.active_generation).where(Document.id == document_id))
        rows = session.execute(
            select(DocumentChunk.content, DocumentChunk.embedding)
            .where(DocumentChunk.document_id == document_id, DocumentChunk.generation == generation)
            .order_by(DocumentChunk.chunk_index)
        ).all()
    assert len(rows) == result.chunks
    stored = np.asarray([np.asarray(vector) for _, vector in rows])
    assert np.allclose(stored, _expected([content for content, _ in rows]), atol=1e-5)


def test_threads_of_one_process_share_its_requests_in_flight(configure: Any, fake_openai: FakeOpenAI) -> None:
    # Like a worker's threads indexing several small documents: one request each, at once.
    provider = configure(embedding_batch_size="8", embedding_concurrency="3")
    fake_openai.embedding_latency = 0.2
    documents = [_texts(8) for _ in range(9)]
    vectors: dict[int, list[list[float]]] = {}

    def index(number: int) -> None:
        vectors[number] = provider.embed(documents[number], usage=UsageContext(purpose="embedding"))

    threads = [threading.Thread(target=index, args=(n,)) for n in range(len(documents))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [call.status for call in fake_openai.calls(EMBEDDINGS)] == [200] * 9
    assert 2 <= fake_openai.embeddings_in_flight_peak <= 3
    for number, texts in enumerate(documents):
        assert np.allclose(np.asarray(vectors[number]), _expected(texts), atol=1e-5)


def test_embed_waits_for_the_token_budget_instead_of_being_refused(configure: Any, fake_openai: FakeOpenAI) -> None:
    provider = configure(embedding_batch_size="5", embedding_concurrency="4")
    texts = _texts(40)  # 8 requests of 5 texts
    per_request = max(call_tokens for call_tokens in _request_tokens(provider, texts, 5))
    # Requests are plentiful; tokens allow two requests per window.
    fake_openai.limit_embeddings(requests=1000, tokens=2 * per_request + per_request // 2, window_seconds=0.4)
    fake_openai.embedding_latency = 0.05
    vectors = provider.embed(texts, usage=UsageContext(purpose="embedding"))
    assert [call.status for call in fake_openai.calls(EMBEDDINGS)] == [200] * 8
    assert np.allclose(np.asarray(vectors), _expected(texts), atol=1e-5)


def _request_tokens(provider: OpenAIProvider, texts: list[str], size: int) -> list[int]:
    from core.platform.tokens import count_tokens

    counts = [count_tokens(text, provider.settings.embedding_model) for text in texts]
    return [sum(counts[start : start + size]) for start in range(0, len(counts), size)]


def test_two_processes_sharing_a_limit_are_refused_rarely_and_lose_nothing(
    configure: Any, fake_openai: FakeOpenAI
) -> None:
    # Two providers are two worker processes: each keeps its own budget from the replies it
    # reads, and the server's window is shared. Each may overshoot by what it has in flight
    # (it learns of the other's requests only from the next reply); the client waits out
    # every 429 (retry-after-ms) instead of hammering the server.
    configure(embedding_batch_size="4", embedding_concurrency="3", openai_max_retries="5")
    first, second = OpenAIProvider(get_settings()), OpenAIProvider(get_settings())
    fake_openai.limit_embeddings(requests=6, tokens=1_000_000, window_seconds=0.5)
    fake_openai.embedding_latency = 0.05
    texts = {1: _texts(48), 2: _texts(48)}  # 12 requests each, 24 in all: at least 4 windows
    vectors: dict[int, list[list[float]]] = {}

    def run(number: int, provider: OpenAIProvider) -> None:
        vectors[number] = provider.embed(texts[number], usage=UsageContext(purpose="embedding"))

    threads = [threading.Thread(target=run, args=(1, first)), threading.Thread(target=run, args=(2, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = [call.status for call in fake_openai.calls(EMBEDDINGS)]
    assert statuses.count(200) == 24
    assert statuses.count(429) <= 12  # far fewer refusals than requests: no storm
    for number in (1, 2):
        assert np.allclose(np.asarray(vectors[number]), _expected(texts[number]), atol=1e-5)


def test_requests_are_planned_within_a_whole_window_of_tokens_once_the_server_reports_it(
    configure: Any, fake_openai: FakeOpenAI
) -> None:
    # A rate limit below one request at the API's own limits (a small deployment's tokens per
    # minute): a request over a whole window would be refused however long it waited.
    provider = configure(embedding_batch_size="8", embedding_concurrency="2")
    texts = _texts(12)
    window = 2 * max(_request_tokens(provider, texts, 1)) + 5  # two texts per request at most
    fake_openai.limit_embeddings(requests=1000, tokens=window, window_seconds=0.3)
    provider.embed(["what are the limits"], usage=UsageContext(purpose="embedding"))  # the reply reports them
    vectors = provider.embed(texts, usage=UsageContext(purpose="embedding"))
    calls = fake_openai.calls(EMBEDDINGS)
    assert [call.status for call in calls] == [200] * len(calls)
    assert all((call.tokens or 0) <= window for call in calls) and len(calls) >= 1 + 6
    assert np.allclose(np.asarray(vectors), _expected(texts), atol=1e-5)
