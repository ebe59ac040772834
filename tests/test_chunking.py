"""Token-aware chunking: sizes, overlap, boundaries, locations and transcript times."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from core.ai.base import TranscriptPiece
from core.documents.chunking import Chunker, chunk_sections, chunk_text, chunk_timed_pieces
from core.documents.extraction import Section
from core.platform.config import get_settings

WORDS = [
    "budget",
    "meeting",
    "decided",
    "platform",
    "team",
    "hiring",
    "continue",
    "quarter",
    "review",
    "costs",
    "risks",
    "customer",
    "roadmap",
    "launch",
    "deadline",
    "vendor",
    "contract",
    "security",
    "audit",
    "migration",
    "database",
]


def make_text(paragraphs: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    out = []
    for _ in range(paragraphs):
        sentences = []
        for _ in range(rng.randint(2, 7)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(4, 30))]
            sentences.append(" ".join(words).capitalize() + rng.choice([".", ".", "?", "!"]))
        out.append(" ".join(sentences))
    return "\n\n".join(out)


def words_of(text: str) -> list[str]:
    return re.findall(r"\S+", text)


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    return Chunker(size=120, overlap=20)


def test_defaults_come_from_settings() -> None:
    chunker = Chunker()
    settings = get_settings()
    assert (chunker.size, chunker.overlap) == (settings.chunk_size_tokens, settings.chunk_overlap_tokens)
    assert (chunker.size, chunker.overlap) == (500, 60)


def test_token_counts_are_exact_and_never_above_the_size(chunker: Chunker) -> None:
    chunks = chunker.chunk_sections([Section(make_text(60))])
    assert len(chunks) > 20
    for chunk in chunks:
        assert chunk.token_count == chunker.count(chunk.text)
        assert chunk.token_count <= 120
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_chunks_never_cut_words_and_cover_the_text_in_order(chunker: Chunker) -> None:
    text = make_text(40)
    source_words = words_of(text)
    chunks = chunker.chunk_sections([Section(text)])
    position = 0
    for chunk in chunks:
        chunk_words = words_of(chunk.text)
        # Every chunk is a run of whole source words, starting at or before where the last ended.
        start = None
        for candidate in range(max(0, position - 60), position + 1):
            if source_words[candidate : candidate + len(chunk_words)] == chunk_words:
                start = candidate
                break
        assert start is not None, chunk.text[:80]
        assert start <= position
        position = start + len(chunk_words)
    assert position == len(source_words)


def test_chunks_end_at_sentence_ends_and_overlap_their_neighbours(chunker: Chunker) -> None:
    chunks = chunker.chunk_sections([Section(make_text(40))])
    for chunk in chunks[:-1]:
        assert chunk.text[-1] in ".?!"
    overlaps = 0
    for previous, current in itertools.pairwise(chunks):
        head = " ".join(words_of(current.text)[:3])
        if head in previous.text:
            overlaps += 1
            shared = current.text[: current.text.find(head) + len(head)]
            assert chunker.count(shared) <= 20 + 5
    assert overlaps >= len(chunks) - 1 - 2  # nearly every neighbour pair shares its boundary text


def test_paragraph_breaks_are_preferred_when_the_chunk_is_full_enough() -> None:
    first = " ".join(["Alpha beta gamma delta."] * 16)  # ~80 tokens
    second = " ".join(["Epsilon zeta eta theta."] * 16)
    chunks = chunk_text(f"{first}\n\n{second}", size=120, overlap=0)
    assert chunks[0].text == first
    assert chunks[1].text == second


def test_long_sentences_split_at_words_and_giant_words_between_tokens() -> None:
    sentence = " ".join(["supercalifragilistic"] * 400)
    blob = "x" * 3000
    chunks = chunk_text(f"{sentence} {blob} tail.", size=100, overlap=10)
    assert all(c.token_count <= 100 for c in chunks)
    for chunk in chunks:
        for word in words_of(chunk.text):
            assert word in ("supercalifragilistic", "tail.") or set(word) == {"x"}
    assert "".join(w for c in chunks for w in words_of(c.text) if set(w) == {"x"}).count("x") >= 3000


def test_sections_keep_page_and_heading_and_are_never_merged() -> None:
    sections = [
        Section("Short page one.", page_number=1, heading="Intro"),
        Section(make_text(8), page_number=2, heading="Intro > Budget"),
        Section("Closing words.", page_number=3, heading=None),
    ]
    chunks = chunk_sections(sections, size=80, overlap=10)
    assert (chunks[0].text, chunks[0].page_number, chunks[0].heading) == ("Short page one.", 1, "Intro")
    assert {c.page_number for c in chunks[1:-1]} == {2}
    assert {c.heading for c in chunks[1:-1]} == {"Intro > Budget"}
    assert (chunks[-1].text, chunks[-1].page_number, chunks[-1].heading) == ("Closing words.", 3, None)


def test_timed_pieces_give_chunks_their_start_and_end_seconds() -> None:
    rng = random.Random(3)
    pieces = [
        TranscriptPiece(
            start=i * 4.0, end=i * 4.0 + 3.5, text=" ".join(rng.choice(WORDS) for _ in range(10)), speaker="A"
        )
        for i in range(200)
    ]
    chunks = chunk_timed_pieces(pieces, size=100, overlap=15)
    assert len(chunks) > 10
    assert chunks[0].start_seconds == 0.0
    assert chunks[-1].end_seconds == pieces[-1].end
    for chunk in chunks:
        assert chunk.start_seconds is not None and chunk.end_seconds is not None
        assert chunk.start_seconds < chunk.end_seconds
        assert chunk.token_count <= 100
        assert chunk.text.startswith("A: ")
        # Times are those of real pieces (chunks hold whole pieces).
        assert chunk.start_seconds % 4.0 == 0.0
    for previous, current in itertools.pairwise(chunks):
        assert current.start_seconds is not None and previous.end_seconds is not None
        assert current.start_seconds < previous.end_seconds  # overlapping pieces
        assert current.start_seconds > (previous.start_seconds or 0.0)


def test_empty_input_gives_no_chunks() -> None:
    assert chunk_sections([Section("   ")]) == []
    assert chunk_timed_pieces([TranscriptPiece(0.0, 1.0, "  ")]) == []


def test_invalid_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        Chunker(size=100, overlap=100)
    with pytest.raises(ValueError):
        Chunker(size=4, overlap=0)


def test_minutes_chunks_take_the_span_of_their_spoken_times() -> None:
    from core.documents.chunking import Chunk, with_spoken_times

    chunks = [
        Chunk(index=0, text="## Decisions\n- [0:01:05] Ship on Monday.\n- [1:02:03] Hire two.", token_count=9),
        Chunk(index=1, text="## Topics\nbilling, hiring", token_count=4),
        Chunk(index=2, text="[0:00:07] kept", token_count=2, start_seconds=3.0, end_seconds=4.0),
    ]
    timed = with_spoken_times(chunks)
    assert (timed[0].start_seconds, timed[0].end_seconds) == (65.0, 3723.0)
    assert (timed[1].start_seconds, timed[1].end_seconds) == (None, None)
    assert (timed[2].start_seconds, timed[2].end_seconds) == (3.0, 4.0)  # real times are never replaced
