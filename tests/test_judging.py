"""Tests for swarmrank.judging: judge prompts, verdict parsing and council ranking parsing."""

from __future__ import annotations

import pytest

from swarmrank.judging import (
    JUDGE_SYSTEM,
    RETRY_SUFFIX,
    flip,
    judge_messages,
    parse_ranking,
    parse_verdict,
    rank_messages,
)
from swarmrank.tasks import Task

TASK = Task.create("What is 17 + 25?")


# --- parse_verdict ------------------------------------------------------------------------------

@pytest.mark.parametrize("reply,expected", [
    ("Verdict: A", "A"),
    ("verdict: b", "B"),
    ("**Verdict:** B", "B"),
    ("**Verdict: A**", "A"),
    ("Verdict: (B)", "B"),
    ("verdict:U", "U"),
    ("Verdict - B", "B"),
    ("The better solution is A.", "A"),
    ("Winner: Solution B", "B"),
])
def test_parse_verdict_reads_verdict_lines(reply, expected):
    assert parse_verdict(reply) == expected


def test_parse_verdict_ignores_letters_in_the_reasoning_before_the_verdict():
    reply = ("Solution A misses a step, and B gets the sign wrong; A is closer but both fail.\n"
             "Verdict: U")
    assert parse_verdict(reply) == "U"


def test_parse_verdict_reasoning_that_praises_a_does_not_override_verdict_b():
    assert parse_verdict("Solution A is fine. Solution B is clearer.\nVerdict: B.") == "B"


def test_parse_verdict_the_last_verdict_wins():
    assert parse_verdict("Verdict: A\nOn reflection, A has an arithmetic slip.\nVerdict: B") == "B"
    assert parse_verdict("Verdict: B\nVerdict: U") == "U"


def test_parse_verdict_reads_a_bare_final_letter():
    assert parse_verdict("Solution A has an error. Solution B is correct.\nB") == "B"
    assert parse_verdict("A") == "A"


@pytest.mark.parametrize("reply", ["They are equally good", "It's a tie.", "Both are correct."])
def test_parse_verdict_tie_wording_means_u(reply):
    assert parse_verdict(reply) == "U"


@pytest.mark.parametrize("reply", ["I cannot decide, hmm", "", "The sum of the two numbers is 42."])
def test_parse_verdict_unreadable_reply_is_none(reply):
    assert parse_verdict(reply) is None


def test_flip_swaps_a_and_b_and_keeps_u():
    assert flip("A") == "B"
    assert flip("B") == "A"
    assert flip("U") == "U"


# --- judge_messages -----------------------------------------------------------------------------

def test_judge_messages_show_both_solutions_in_the_given_order():
    system, user = judge_messages(TASK, "  The sum is 42.  ", "It is 41.\n")
    assert system.role == "system" and system.content == JUDGE_SYSTEM
    assert user.role == "user"
    assert user.content.startswith("Problem:\nWhat is 17 + 25?\n")
    assert "Solution A:\nThe sum is 42.\n\nSolution B:\nIt is 41.\n" in user.content
    assert user.content.index("The sum is 42.") < user.content.index("It is 41.")


def test_judge_messages_swapped_arguments_swap_the_labels():
    _, user = judge_messages(TASK, "It is 41.", "The sum is 42.")
    assert "Solution A:\nIt is 41.\n\nSolution B:\nThe sum is 42." in user.content


def test_judge_messages_add_the_retry_suffix_only_on_retry():
    _, first = judge_messages(TASK, "x", "y")
    _, retry = judge_messages(TASK, "x", "y", retry=True)
    assert RETRY_SUFFIX not in first.content
    assert "had no verdict" not in first.content
    assert retry.content == first.content + RETRY_SUFFIX


def test_judge_messages_use_a_given_system_prompt():
    system, _ = judge_messages(TASK, "x", "y", system="Be terse.")
    assert system.content == "Be terse."


# --- council ranking ----------------------------------------------------------------------------

def test_rank_messages_label_responses_a_b_c_in_order():
    _, user = rank_messages(TASK, ["one", "two", "three"])
    assert "Response A:\none\n\nResponse B:\ntwo\n\nResponse C:\nthree" in user.content
    assert "FINAL RANKING:" in user.content


def test_parse_ranking_reads_a_final_ranking_block():
    reply = ("Response A is correct but terse. Response B is wrong. Response C is correct and clear.\n\n"
             "FINAL RANKING:\n1. Response C\n2. Response A\n3. Response B\n")
    assert parse_ranking(reply, 3) == [2, 0, 1]


def test_parse_ranking_ignores_responses_named_before_the_marker():
    reply = "Response B is best, then Response A.\nFINAL RANKING:\n1. Response A\n2. Response B"
    assert parse_ranking(reply, 2) == [0, 1]


def test_parse_ranking_drops_duplicates_and_unknown_labels():
    reply = "FINAL RANKING:\n1. Response C\n2. Response A\n3. Response C\n4. Response Z\n5. Response B"
    assert parse_ranking(reply, 3) == [2, 0, 1]


def test_parse_ranking_labels_beyond_n_are_unknown():
    assert parse_ranking("FINAL RANKING:\n1. Response D\n2. Response A", 3) == [0]


def test_parse_ranking_accepts_bold_lowercase_and_parenthesis_numbering():
    assert parse_ranking("final ranking\n1) **Response b**\n2. response a", 2) == [1, 0]


def test_parse_ranking_falls_back_to_order_of_mention_after_the_marker():
    assert parse_ranking("FINAL RANKING: Response B, then Response C, then Response A", 3) == [1, 2, 0]


def test_parse_ranking_without_a_marker_and_without_numbered_lines_is_empty():
    assert parse_ranking("Response A is best, Response B second", 2) == []


def test_parse_ranking_without_a_marker_still_reads_numbered_lines():
    assert parse_ranking("1. Response B\n2. Response A", 2) == [1, 0]
