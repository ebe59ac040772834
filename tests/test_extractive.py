"""core.ai.extractive: sentence splitting, ranking, decisions, action items, question overlap."""

from __future__ import annotations

from core.ai.extractive import (
    ActionItem,
    action_item,
    answering_indexes,
    best_sentences,
    find_action_items,
    find_decisions,
    find_due,
    find_owner,
    overlap_scores,
    rank_sentences,
    split_sentences,
    top_sentences,
)
from core.chat import Source
from core.chat.answers import EXTRACTIVE_INTRO, NO_ANSWERING_SENTENCE, extractive_answer


def test_split_sentences_keeps_abbreviations_initials_and_decimals_together() -> None:
    text = "Dr. Smith met J. Doe at 3 p.m. today. The rate rose 2.5 percent! Did it? Yes, e.g. this one."
    assert split_sentences(text) == [
        "Dr. Smith met J. Doe at 3 p.m. today.",
        "The rate rose 2.5 percent!",
        "Did it?",
        "Yes, e.g. this one.",
    ]


def test_split_sentences_treats_bullets_and_utterance_lines_as_sentences_and_joins_wrapped_lines() -> None:
    text = "Agenda\n- Budget review\n- Hiring plan\n\nThe budget was\napproved by everyone.\nNext item"
    assert split_sentences(text) == [
        "Agenda",
        "Budget review",
        "Hiring plan",
        "The budget was approved by everyone.",
        "Next item",
    ]


def test_split_sentences_of_empty_text_is_empty() -> None:
    assert split_sentences("") == []
    assert split_sentences("  \n\n ") == []


def test_rank_sentences_prefers_the_sentences_that_share_the_meetings_topic() -> None:
    sentences = [
        "Okay.",
        "The budget review covered the marketing budget for the next quarter.",
        "My cat likes fish.",
        "Marketing asked for a larger budget next quarter.",
        "The quarter budget for marketing is approved.",
    ]
    scores = rank_sentences(sentences)
    assert len(scores) == len(sentences)
    assert min(scores[1], scores[3], scores[4]) > scores[2]
    assert scores[0] < scores[2] or scores[0] == 0.0


def test_top_sentences_returns_the_best_in_text_order() -> None:
    text = (
        "We met on Monday. The database migration plan needs a rollback step. "
        "Lunch was pizza. The migration plan rollback will be tested on staging. "
        "Staging runs the database migration nightly."
    )
    best = top_sentences(text, limit=2)
    assert len(best) == 2
    assert "Lunch was pizza." not in best
    sentences = split_sentences(text)
    assert [sentences.index(s) for s in best] == sorted(sentences.index(s) for s in best)


def test_find_decisions_picks_decision_sentences_and_skips_questions_and_negations() -> None:
    sentences = [
        "We decided to move the launch to March 3.",
        "Decision: use PostgreSQL for everything.",
        "The team agreed on a two-week sprint.",
        "Have we agreed on the vendor?",
        "We have not decided on the logo.",
        "The weather was nice.",
        "We decided to move the launch to March 3.",
    ]
    assert find_decisions(sentences) == sentences[:3]


def test_action_items_get_owner_and_due_date() -> None:
    assert action_item("Alice will send the budget by Friday.") == ActionItem(
        text="Alice will send the budget by Friday.", owner="Alice", due="Friday"
    )
    item = action_item("Then Dave Jones will book the room by end of the week.")
    assert item is not None and item.owner == "Dave Jones" and item.due == "end of the week"
    item = action_item("Action item for Bob: update the roadmap.")
    assert item is not None and item.owner == "Bob" and item.due is None
    item = action_item("Carol to review the contract")
    assert item is not None and item.owner == "Carol"
    item = action_item("We will circulate the notes tomorrow.")
    assert item is not None and item.owner is None and item.due == "tomorrow"


def test_sentences_that_assign_no_work_are_not_action_items() -> None:
    assert action_item("It will probably rain.") is None
    assert action_item("Will Alice send it?") is None
    assert action_item("The budget review is done.") is None
    assert action_item("") is None


def test_find_action_items_keeps_order_and_drops_repeats() -> None:
    sentences = [
        "Bob will fix the login bug.",
        "Nice.",
        "To do: write the release notes.",
        "Bob will fix the login bug.",
    ]
    items = find_action_items(sentences)
    assert [i.text for i in items] == ["Bob will fix the login bug.", "To do: write the release notes."]
    assert items[0].owner == "Bob"


def test_owner_and_due_helpers() -> None:
    assert find_owner("We will ship it.") is None
    assert find_owner("assigned to Priya Patel") == "Priya Patel"
    assert find_due("Send it by next Monday please") == "next Monday"
    assert find_due("due March 14th") == "March 14th"
    assert find_due("No date here") is None


def test_overlap_scores_rank_the_sentence_that_answers_the_question() -> None:
    sentences = [
        "The launch moved to March 3 after the security review.",
        "Alice owns the budget.",
        "Everyone liked the new office.",
    ]
    scores = overlap_scores("When is the launch?", sentences)
    assert scores[0] > 0 and scores[1] == 0 and scores[2] == 0
    assert best_sentences("Who owns the budget?", sentences) == ["Alice owns the budget."]
    assert best_sentences("quantum chromodynamics", sentences) == []
    assert overlap_scores("the of and", sentences) == [0.0, 0.0, 0.0]


def test_only_sentences_that_answer_the_question_are_kept() -> None:
    sentences = [
        "Alerts page the on-call engineer when the error rate exceeds two percent.",
        "Travel expenses are reimbursed within 14 days when the receipt is uploaded.",
        "Staff may work remotely up to three days a week.",
    ]
    # "days" alone links the expenses sentence to the question: not enough to quote it.
    assert answering_indexes("How many days can employees work remotely?", sentences) == [2]
    assert answering_indexes("When is the on-call engineer paged?", sentences) == [0]
    assert answering_indexes("What is the refund policy for days off?", sentences) == []
    # Two of five question words (employees, days) in a vacation rule do not answer a
    # question about remote work that another sentence answers.
    handbook = [*sentences, "Every full-time employee receives 25 days of paid vacation per calendar year."]
    assert answering_indexes("How many days can employees work remotely?", handbook) == [2]


def test_extractive_answer_quotes_answering_sentences_and_says_when_none_does() -> None:
    sources = [
        Source(number=1, kind="chunk", label="architecture.md", excerpt="Alerts page the on-call engineer "
               "when the error rate exceeds two percent. The on-call rotation changes every Monday."),
        Source(number=2, kind="chunk", label="handbook.pdf", excerpt="Travel expenses are reimbursed within "
               "14 days. Hotel costs above 180 euros per night need approval from a director."),
    ]  # fmt: skip
    answer = extractive_answer("Who is the on-call engineer, and when does the rotation change?", sources)
    assert answer.startswith(EXTRACTIVE_INTRO)
    assert "[1]" in answer and "on-call rotation changes every Monday" in answer
    assert "expenses" not in answer and "[2]" not in answer
    assert extractive_answer("How many days does the rotation of hotel staff take?", sources[1:]) == (
        NO_ANSWERING_SENTENCE
    )
    assert extractive_answer("zebra xylophone", sources) == ""
