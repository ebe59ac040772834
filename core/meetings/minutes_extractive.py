"""Extractive minutes: summary, decisions, action items, questions and topics picked from
the transcript's own sentences (the offline provider, and the fallback for a bad model answer).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Sequence, Set
from dataclasses import dataclass

from core.ai import extractive
from core.ai.base import TranscriptPiece
from core.ai.hashing import STOPWORDS
from core.meetings.minutes_format import EXTRACTIVE_GENERATOR, Minutes, MinutesActionItem, MinutesItem

_TOPIC_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]")
_FILLER_WORDS = """going think know like just really right well get got gonna wanna want need needs let lets say said
    thing things stuff lot kind sort sure good great yes yeah mean actually maybe something anything everything
    will can could would make made look looks see come go goes one two also still even back way time today
    tomorrow week monday tuesday wednesday thursday friday saturday sunday us ok okay hey hi hello thanks thank
    guys everyone anyone someone people pretty much many little bit quite probably definitely basically
    decided decide agreed agree send sent update discuss discussed talk talked start started finish done ship
    use using work working take put give keep try call tell ask feel move welcome meeting morning afternoon evening
    let's we'll i'll it's that's don't
    item items next step steps action actions agenda point points first second third last new same other end
    day days month months year years hour hours minute minutes follow fits fit leave
    thousand thousands hundred hundreds million millions billion percent dollars dollar euros euro"""
_FILLER = frozenset(_FILLER_WORDS.split())


@dataclass(frozen=True)
class _Sentence:
    text: str
    start: float
    speaker: str | None


def _timed_sentences(pieces: Sequence[TranscriptPiece]) -> list[_Sentence]:
    """Sentences of the transcript, each with the time it started and its speaker.

    Consecutive pieces of one speaker are joined first, so a sentence Whisper cut in two is
    whole again; the start is interpolated within the piece where the sentence begins.
    """
    sentences: list[_Sentence] = []
    turn: list[TranscriptPiece] = []

    def flush() -> None:
        if not turn:
            return
        texts = [re.sub(r"\s+", " ", p.text).strip() for p in turn]
        joined = " ".join(texts)
        offsets: list[int] = []
        position = 0
        for text in texts:
            offsets.append(position)
            position += len(text) + 1
        cursor = 0
        for sentence in extractive.split_sentences("\n".join(texts)):
            found = joined.find(sentence, cursor)
            if found < 0:
                found = joined.find(sentence[:24], cursor)
            at = found if found >= 0 else cursor
            index = max(i for i, offset in enumerate(offsets) if offset <= at) if offsets else 0
            piece = turn[index]
            fraction = (at - offsets[index]) / max(1, len(texts[index]))
            start = piece.start + max(0.0, piece.end - piece.start) * min(1.0, fraction)
            sentences.append(_Sentence(sentence, round(start, 3), piece.speaker))
            if found >= 0:
                cursor = found + len(sentence)
        turn.clear()

    for piece in pieces:
        if turn and piece.speaker != turn[-1].speaker:
            flush()
        turn.append(piece)
    flush()
    return sentences


def _is_open_question(sentence: str) -> bool:
    words = _TOPIC_WORD.findall(sentence)
    meaningful = [w for w in words if w.lower() not in STOPWORDS and w.lower() not in _FILLER]
    return sentence.rstrip().endswith("?") and len(words) >= 3 and bool(meaningful)


def _key_phrases(
    sentences: Sequence[str], *, salient: Set[int] = frozenset(), names: Set[str] = frozenset(), limit: int = 8
) -> list[str]:
    """The most frequent content bigrams and words (bigrams count double), without overlap,
    ties by first mention, each in its most common spelling ("Q3 budget").

    Words in `salient` sentences (decisions, action items, questions) count one and a half;
    people's `names` (lower case) are not topics. Short meetings (under 200 content words)
    may use words said once; longer ones need two mentions; beyond three, a topic list never
    exceeds one phrase per 15 content words.
    """
    unigrams: Counter[str] = Counter()
    bigrams: Counter[str] = Counter()
    weight: defaultdict[str, float] = defaultdict(float)
    spelling: dict[str, Counter[str]] = {}
    first_seen: dict[str, int] = {}
    total = 0
    for index, sentence in enumerate(sentences):
        bonus = 1.5 if index in salient else 1.0
        words = [w.replace("’", "'") for w in _TOPIC_WORD.findall(sentence)]
        keep = [w if _is_topic_word(w.lower()) and w.lower() not in names else "" for w in words]
        for word in keep:
            if word:
                total += 1
                unigrams[word.lower()] += 1
                weight[word.lower()] += bonus
                spelling.setdefault(word.lower(), Counter())[word] += 1
                first_seen.setdefault(word.lower(), total)
        for a, b in itertools.pairwise(keep):
            if a and b and a.lower() != b.lower():
                phrase = f"{a.lower()} {b.lower()}"
                bigrams[phrase] += 1
                weight[phrase] += 2.0 * bonus
                first_seen.setdefault(phrase, total)
    minimum = 2 if total >= 200 else 1
    candidates = [(weight[phrase], phrase) for phrase, count in bigrams.items() if count >= 2]
    candidates += [(weight[word], word) for word, count in unigrams.items() if count >= minimum]
    chosen: list[str] = []
    used_words: set[str] = set()
    for _, phrase in sorted(candidates, key=lambda c: (-c[0], first_seen[c[1]])):
        parts = phrase.split()
        if used_words.intersection(parts):
            continue
        chosen.append(" ".join(spelling[p].most_common(1)[0][0] for p in parts))
        used_words.update(parts)
        if len(chosen) >= min(limit, max(3, total // 15)):
            break
    return chosen


def _is_topic_word(word: str) -> bool:
    return len(word) > 2 and word not in STOPWORDS and word not in _FILLER and not word.isdigit()


def extractive_minutes(pieces: Sequence[TranscriptPiece], *, title: str = "Meeting minutes") -> Minutes:
    """Minutes quoted from the transcript, without a language model. Pure and deterministic.

    Summary: the most central sentences (3 to 10, more for longer meetings). Decisions and
    action items: sentences with decision or commitment cues (core.ai.extractive), the owner
    named in the sentence or, for "I will ...", the speaker, and the deadline as said.
    Open questions: substantive questions, at most 10. Topics: frequent key phrases.
    Every item carries the second its sentence began.
    """
    timed = _timed_sentences(pieces)
    texts = [s.text for s in timed]
    scores = extractive.rank_sentences(texts)
    summary_size = min(10, max(3, 3 + len(texts) // 60))
    best = sorted(range(len(texts)), key=lambda i: (-scores[i], i))[:summary_size]
    summary = " ".join(texts[i] for i in sorted(best))

    decisions: list[MinutesItem] = []
    actions: list[MinutesActionItem] = []
    questions: list[tuple[float, int]] = []
    marked: set[int] = set()  # indexes of decisions and action items
    seen: set[str] = set()
    for index, sentence in enumerate(timed):
        key = sentence.text.lower()
        if key in seen:
            continue
        seen.add(key)
        if extractive.is_decision(sentence.text):
            decisions.append(MinutesItem(sentence.text, sentence.start))
            marked.add(index)
        item = extractive.action_item(sentence.text)
        if item is not None:
            marked.add(index)
            owner = item.owner
            if owner is None and sentence.speaker and re.match(r"\s*I\b", sentence.text):
                owner = sentence.speaker
            actions.append(MinutesActionItem(task=item.text, owner=owner, due=item.due, timestamp=sentence.start))
        elif _is_open_question(sentence.text):
            questions.append((scores[index], index))
    kept_questions = sorted(index for _, index in sorted(questions, key=lambda q: (-q[0], q[1]))[:10])

    salient = marked | set(kept_questions)
    names = {a.owner.lower() for a in actions if a.owner} | {s.speaker.lower() for s in timed if s.speaker}
    topics = _key_phrases(texts, salient=salient, names=names)
    return Minutes(
        title=title,
        summary=summary,
        decisions=tuple(decisions),
        action_items=tuple(actions),
        open_questions=tuple(MinutesItem(timed[i].text, timed[i].start) for i in kept_questions),
        topics=tuple(topics),
        generator=EXTRACTIVE_GENERATOR,
    )
