"""Extractive text tools: split sentences, rank them, find decisions and action items,
score sentences against a question. Pure functions, no I/O; the offline provider, the
minutes and the chat services build on them.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.ai.hashing import content_words


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Abbreviations whose period does not end a sentence.
_ABBREVIATIONS = _word_set(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e approx dept est inc ltd co corp no fig jan feb mar apr jun jul "
    "aug sep sept oct nov dec mon tue wed thu fri sat sun a.m p.m u.s"
)
_BOUNDARY = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+")
_BULLET = re.compile(r"^\s*(?:[-*•‣▪]|\d+[.)]|\[[ xX]\])\s+")
_SPACE = re.compile(r"\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`, stripped, in order.

    Ends a sentence at . ! ? followed by space, except after common abbreviations,
    initials and decimals; line breaks end a sentence when the line is a bullet or the
    blank-line paragraph ends. Bullet markers are removed.
    """
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line for line in paragraph.splitlines() if line.strip()]
        # A line continues the previous one only when that one is unfinished and this one
        # starts in lower case (wrapped text); bullets, headings and new utterances stand alone.
        blocks: list[str] = []
        for line in lines:
            continues = blocks and not blocks[-1].rstrip().endswith((".", "!", "?", ":", ";"))
            if _BULLET.match(line) or not continues or not line.lstrip()[:1].islower():
                blocks.append(_BULLET.sub("", line))
            else:
                blocks[-1] += " " + line
        for block in blocks:
            sentences.extend(_split_block(_SPACE.sub(" ", block).strip()))
    return [s for s in sentences if s]


def _split_block(block: str) -> list[str]:
    parts: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(block):
        candidate = block[start : match.start()].rstrip()
        last_word = candidate.rsplit(" ", 1)[-1].rstrip(".").lower()
        next_char = block[match.end() : match.end() + 1]
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue  # "Dr. Smith", "J. Doe"
        if next_char and next_char.islower():
            continue  # "e.g. this", a period that did not end the thought
        parts.append(block[start : match.end()].strip())
        start = match.end()
    tail = block[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def _tfidf_matrix(token_lists: Sequence[Sequence[str]]) -> np.ndarray:
    """Rows are L2-normalised tf-idf vectors (sublinear tf) over the vocabulary of the lists."""
    vocabulary: dict[str, int] = {}
    for tokens in token_lists:
        for token in tokens:
            vocabulary.setdefault(token, len(vocabulary))
    matrix = np.zeros((len(token_lists), max(len(vocabulary), 1)), dtype=np.float64)
    for row, tokens in enumerate(token_lists):
        for token, count in Counter(tokens).items():
            matrix[row, vocabulary[token]] = 1.0 + math.log(count)
    document_frequency = (matrix > 0).sum(axis=0)
    idf = np.log((1 + len(token_lists)) / (1 + document_frequency)) + 1.0
    matrix *= idf
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix


def rank_sentences(sentences: Sequence[str]) -> list[float]:
    """A centrality score per sentence (same order): how much it shares with the whole text.

    The score is the sentence's tf-idf cosine with the sum of all other sentences, the
    degree centrality of LexRank computed in O(n) instead of O(n²). Sentences with fewer
    than four content words are damped: fillers like "Okay, sounds good." rarely carry a
    meeting. Scores are >= 0; all zero for fewer than two sentences with content.
    """
    tokens = [content_words(s) for s in sentences]
    if not sentences:
        return []
    matrix = _tfidf_matrix(tokens)
    total = matrix.sum(axis=0)
    raw = matrix @ total - (matrix * matrix).sum(axis=1)  # similarity to every other sentence
    scores: list[float] = []
    for value, words in zip(raw.tolist(), tokens, strict=True):
        damping = min(1.0, len(words) / 4.0)
        scores.append(max(0.0, float(value)) * damping)
    return scores


def top_sentences(text: str | Sequence[str], *, limit: int = 5) -> list[str]:
    """The `limit` most central sentences of `text` (a string or its sentences), in text order."""
    sentences = split_sentences(text) if isinstance(text, str) else list(text)
    if len(sentences) <= limit:
        return sentences
    scores = rank_sentences(sentences)
    best = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[:limit]
    return [sentences[i] for i in sorted(best)]


_DECISION_CUES = re.compile(
    r"\b(?:we|they|the team|everyone|the group|the board|management)\s+(?:have\s+|has\s+)?(?:decided|agreed|"
    r"settled on|chose|chosen|opted|voted|approved|concluded|resolved)\b"
    r"|\b(?:decision|decided|agreed|agreement|approved|consensus|resolved|final call)\b"
    r"|\blet'?s go with\b|\bwe(?:'ll| will) go with\b|\bgoing forward\b",
    re.IGNORECASE,
)
_NOT_DECISION = re.compile(r"\b(?:not (?:yet )?(?:decided|agreed)|undecided|no decision|haven't decided)\b", re.I)
_ACTION_CUES = re.compile(
    r"(?i:\baction items?\b|\bto-?dos?\b|\bto do\b|\bfollow(?:s|ed)?[- ]up\b|\bnext steps?\b"
    r"|\b(?:will|'ll|shall|needs? to|has to|have to|is going to|are going to|should|must|takes?|owns?)\b)"
    r"|\b[A-Z][a-z]+ to (?:send|write|draft|review|prepare|update|check|schedule|book|share|fix|call|email|set up)\b",
)
_WEAK_ACTION = re.compile(r"\b(?:will|'ll|should|must)\s+(?:be|have|see|probably|not|never)\b", re.I)
_DUE = re.compile(
    r"\b(?:by|before|until|due|on|no later than)\s+("
    r"(?:next\s+|this\s+)?(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|week|month|quarter)"
    r"|(?:the\s+)?end of (?:the\s+)?(?:day|week|month|quarter|year|sprint)"
    r"|tomorrow|tonight|today|eod|eow|cob"
    r"|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?"
    r"|\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*"
    r"|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}(?:/\d{2,4})?"
    r")",
    re.IGNORECASE,
)
_BARE_DUE = re.compile(
    r"\b(tomorrow|tonight|next (?:week|month|monday|tuesday|wednesday|thursday|friday))\b", re.IGNORECASE
)
_NAME = r"[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?"
_OWNER_PATTERNS = (
    re.compile(rf"\b(?i:action items?)\s*(?:for|:)\s*({_NAME})\b"),
    re.compile(rf"\b({_NAME})\s*(?:will|'ll|is going to|needs to|has to|should|to (?=[a-z]))\b"),
    re.compile(rf"\b({_NAME})\s+(?:takes|owns|is on)\b"),
    re.compile(rf"\bassign(?:ed)?\s+to\s+({_NAME})\b"),
    re.compile(rf"@({_NAME})\b"),
)
_NOT_NAMES = _word_set(
    """I We You They He She It This That There Then Also And But So Everyone Someone Nobody Anyone Team Who
    What Which Next Action Okay Ok Yes No Maybe Please Let Lets Today Tomorrow Monday Tuesday Wednesday
    Thursday Friday Saturday Sunday Speaker The A An Our My Your Their Its Each Both All Somebody Everybody"""
)


@dataclass(frozen=True)
class ActionItem:
    """A sentence that assigns work, with who (if named) and when (if said) as written."""

    text: str
    owner: str | None = None
    due: str | None = None


def is_decision(sentence: str) -> bool:
    """True when the sentence reports a decision ("we decided", "agreed", "decision: ...")."""
    return bool(_DECISION_CUES.search(sentence)) and not _NOT_DECISION.search(sentence) and not sentence.endswith("?")


def find_decisions(sentences: Sequence[str]) -> list[str]:
    """The sentences that report decisions, in order, without repeats."""
    seen: set[str] = set()
    found: list[str] = []
    for sentence in sentences:
        key = sentence.lower()
        if key not in seen and is_decision(sentence):
            seen.add(key)
            found.append(sentence)
    return found


def find_owner(sentence: str) -> str | None:
    """The capitalised name the sentence assigns work to ("Alice will ...", "action item for Bob")."""
    for pattern in _OWNER_PATTERNS:
        for match in pattern.finditer(sentence):
            words = [w for w in match.group(1).split() if w not in _NOT_NAMES]
            # "Then Alice will" -> Alice; "We will" -> nobody named.
            if words and match.group(1).split()[-1] == words[-1]:
                return " ".join(words)
    return None


def find_due(sentence: str) -> str | None:
    """The deadline as written ("Friday", "end of the week", "March 3"), or None."""
    match = _DUE.search(sentence) or _BARE_DUE.search(sentence)
    return match.group(1) if match else None


def action_item(sentence: str) -> ActionItem | None:
    """An ActionItem when the sentence commits someone to work, else None.

    Needs an action cue ("will", "action item", "to do", "needs to", "Name to send ...")
    and either a named owner, a deadline or an explicit "action item"/"to do" marker, so
    "It will rain" is not an action item but "Alice will send the deck by Friday" is.
    Questions are never action items.
    """
    text = sentence.strip()
    if not text or text.endswith("?") or not _ACTION_CUES.search(text):
        return None
    owner = find_owner(text)
    due = find_due(text)
    explicit = re.search(r"\baction items?\b|\bto-?dos?\b|\bto do\b|\bnext steps?\b|\bfollow[- ]up\b", text, re.I)
    first_person = re.match(r"\s*(?:i|we)\s*(?:will|'ll|need to|have to|are going to|am going to)\b", text, re.I)
    if _WEAK_ACTION.search(text) and not (owner or explicit):
        return None
    if owner or due or explicit or first_person:
        return ActionItem(text=text, owner=owner, due=due)
    return None


def find_action_items(sentences: Sequence[str]) -> list[ActionItem]:
    """The action items among `sentences`, in order, without repeats."""
    seen: set[str] = set()
    found: list[ActionItem] = []
    for sentence in sentences:
        item = action_item(sentence)
        if item and item.text.lower() not in seen:
            seen.add(item.text.lower())
            found.append(item)
    return found


def overlap_scores(question: str, sentences: Sequence[str]) -> list[float]:
    """How well each sentence answers `question` by shared content words, weighted by rarity.

    Sum over the question's distinct content words found in the sentence of their idf
    (rarer among the sentences counts more), plus a bonus for shared bigrams, divided by
    the question's total weight. 0 means nothing shared; 1 or more means every question
    word appears.
    """
    question_words = content_words(question)
    if not question_words or not sentences:
        return [0.0] * len(sentences)
    sentence_words = [content_words(s) for s in sentences]
    sets = [set(words) for words in sentence_words]
    n = len(sentences)
    idf = {w: math.log((1 + n) / (1 + sum(1 for s in sets if w in s))) + 1.0 for w in set(question_words)}
    norm = sum(idf.values())
    question_bigrams = set(itertools.pairwise(question_words))
    scores: list[float] = []
    for words, word_set in zip(sentence_words, sets, strict=True):
        score = sum(weight for word, weight in idf.items() if word in word_set)
        if question_bigrams:
            shared = question_bigrams & set(itertools.pairwise(words))
            score += 0.5 * sum(idf[a] + idf[b] for a, b in shared) / 2
        scores.append(score / norm)
    return scores


# A sentence answers a question when it holds at least this share of the question's weighted
# content words, and at least this share of the best sentence's score: one shared common
# word ("week", "team") must not pull an unrelated passage into an answer.
ANSWER_MIN_COVERAGE = 0.25
ANSWER_MIN_SHARE_OF_BEST = 0.7


def answering_indexes(question: str, sentences: Sequence[str]) -> list[int]:
    """Indexes of the `sentences` that answer `question`, best first (ties in text order).

    Empty when none shares enough of the question: the caller says so instead of quoting
    the nearest unrelated text. Pure.
    """
    scores = overlap_scores(question, sentences)
    best = max(scores, default=0.0)
    if best < ANSWER_MIN_COVERAGE:
        return []
    floor = max(ANSWER_MIN_COVERAGE, ANSWER_MIN_SHARE_OF_BEST * best)
    return sorted((i for i, s in enumerate(scores) if s >= floor), key=lambda i: (-scores[i], i))


def best_sentences(question: str, text: str | Sequence[str], *, limit: int = 3) -> list[str]:
    """The `limit` sentences of `text` that answer `question` (answering_indexes), best first."""
    sentences = split_sentences(text) if isinstance(text, str) else list(text)
    return [sentences[i] for i in answering_indexes(question, sentences)[:limit]]
