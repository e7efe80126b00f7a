"""Tests for parley.agents.voice.chunker: sentence chunks for TTS from streamed LLM text."""

from __future__ import annotations

import random
import re

import pytest

from parley.agents.voice.chunker import ChunkerSettings, SentenceChunker

#: Replies in the shape an enterprise voice agent produces; used for the streaming checks.
REPLIES = [
    "Hello there. How are you today? I'm fine!",
    "Dr. Smith can see you on Jan. 5 at 9:00 a.m. in room 3.5B. Please arrive early. "
    "Dr. Patel, Dr. Jones and Dr. Brown are away. Mr. and Mrs. Lee booked too. Thanks!",
    'He said "stop." Then he left the building.',
    "Sure, I can help you with that. Your order No. 1042 ships on Dec. 3 at 10.30, "
    "i.e. tomorrow. It costs $3.50 (about 1,000 points).",
    "Here are your options:\n\n1. **Reschedule** the appointment\n2. Cancel it\n"
    "- Talk to a *nurse*\n\n## Next steps\nWhich would you like?",
    "Wait... what?! That's surprising!! Okay then — let's go. No. I don't think so.",
    "J. R. Smith, e.g. the author, wrote it vs. the others etc. and it sold well. "
    "So do I. The end.",
    "word " * 120,
    "",
]


def _whole(text: str, settings: ChunkerSettings | None = None) -> list[str]:
    chunker = SentenceChunker(settings)
    return chunker.push(text) + chunker.flush()


def _pieces(pieces: list[str], settings: ChunkerSettings | None = None) -> list[str]:
    chunker = SentenceChunker(settings)
    out: list[str] = []
    for piece in pieces:
        out += chunker.push(piece)
    return out + chunker.flush()


def _words(text: str) -> list[str]:
    """Split like an LLM tokenizer does: each piece carries its leading whitespace."""
    return re.findall(r"\s*\S+|\s+", text)


# ---------------------------------------------------------------- sentence ends


def test_sentences_end_on_terminal_punctuation() -> None:
    assert _whole("Hello there. How are you today? I'm fine, thanks!") == [
        "Hello there.",
        "How are you today?",
        "I'm fine, thanks!",
    ]


def test_end_is_known_only_when_whitespace_follows() -> None:
    chunker = SentenceChunker()
    assert chunker.push("The clinic opens at nine.") == []
    assert chunker.push(" Bring") == ["The clinic opens at nine."]
    assert chunker.push(" your card.") == []
    assert chunker.flush() == ["Bring your card."]


def test_punctuation_runs_and_ellipsis() -> None:
    text = "Wait, what?! That is really surprising!! Well… let me think... Okay, done."
    assert _whole(text, ChunkerSettings(first_chunk_min_chars=50)) == [
        "Wait, what?!",
        "That is really surprising!!",
        "Well… let me think...",
        "Okay, done.",
    ]


@pytest.mark.parametrize(
    "abbreviation",
    ["Dr.", "Mr.", "Mrs.", "Ms.", "St.", "Jr.", "Sr.", "Prof.", "vs.", "etc.", "e.g.", "i.e.",
     "a.m.", "p.m.", "Jan.", "Feb.", "Mar.", "Apr.", "Jun.", "Jul.", "Aug.", "Sep.", "Sept.",
     "Oct.", "Nov.", "Dec.", "DR.", "E.g.", "A.M."],
)  # fmt: skip
def test_no_sentence_end_after_abbreviations(abbreviation: str) -> None:
    text = f"We talked about {abbreviation} Kent and the others today. Then we left."
    assert _whole(text) == [
        f"We talked about {abbreviation} Kent and the others today.",
        "Then we left.",
    ]


def test_repeated_abbreviations_do_not_stall_later_boundaries() -> None:
    # The reference code stops finding boundaries after its first skipped "Dr.".
    text = (
        "Dr. Smith is in today. Dr. Jones is not. Dr. Brown and Dr. Patel work late. "
        "Call Dr. Lee at 9 a.m. or 5 p.m. if needed. That is all."
    )
    assert _whole(text) == [
        "Dr. Smith is in today.",
        "Dr. Jones is not.",
        "Dr. Brown and Dr. Patel work late.",
        "Call Dr. Lee at 9 a.m. or 5 p.m. if needed.",
        "That is all.",
    ]


def test_single_capital_initials_are_not_sentence_ends() -> None:
    assert _whole("Please ask for J. Smith at the desk. He knows.") == [
        "Please ask for J. Smith at the desk.",
        "He knows.",  # the end of the reply: emitted although shorter than min_chunk_chars
    ]
    # "I" is a word, not an initial.
    assert _whole("I will call the pharmacy now, and so will I. Then we are done.") == [
        "I will call the pharmacy now,",
        "and so will I.",
        "Then we are done.",
    ]


def test_number_abbreviation_only_before_a_number() -> None:
    assert _whole("Your ticket is No. 42 in the queue. No. I can't move it.") == [
        "Your ticket is No. 42 in the queue.",
        "No. I can't move it.",  # "No." alone is too short and merges forward
    ]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("The dose is 3.5 mg twice a day. Take it with food.", "The dose is 3.5 mg twice a day."),
        ("We open at 10.30 on weekdays. Call us then.", "We open at 10.30 on weekdays."),
        ("The visit is at 9:00 a.m. on Monday. See you.", "The visit is at 9:00 a.m. on Monday."),
        ("The fee is $3.50 per month only. Thanks.", "The fee is $3.50 per month only."),
    ],
)
def test_decimals_and_times_are_not_sentence_ends(text: str, first: str) -> None:
    assert _whole(text)[0] == first


@pytest.mark.parametrize(
    ("text", "chunks"),
    [
        ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
        ("He said 'stop!' Then he left.", ["He said 'stop!'", "Then he left."]),
        ("It is closed (for now.) We reopen soon.", ["It is closed (for now.)", "We reopen soon."]),
        ("She asked “really?” Then laughed.", ["She asked “really?”", "Then laughed."]),
        ("It is **done.** Next we pay.", ["It is done.", "Next we pay."]),
    ],
)
def test_closing_quotes_and_brackets_stay_with_their_sentence(text: str, chunks: list[str]) -> None:
    assert _whole(text) == chunks


# ---------------------------------------------------------------- lengths


def test_short_fragments_merge_forward() -> None:
    assert _whole("I can book that. Ok. Yes. Fine. Good. Now the long sentence ends here.") == [
        "I can book that.",
        "Ok. Yes. Fine.",
        "Good. Now the long sentence ends here.",
    ]
    # A merged fragment never hides the boundaries after it.
    assert _whole("No. It is not. We can not do that today. Sorry about that.") == [
        "No. It is not.",
        "We can not do that today.",
        "Sorry about that.",
    ]


# ---------------------------------------------------------------- the first chunk


def test_first_chunk_ends_at_the_opener_of_the_simulators_reply() -> None:
    # The LLM simulator's reply when it needs a name; streamed as it streams it.
    text = "Sure, I can help. Can I have your full name or patient ID?"
    assert _pieces(_words(text)) == [
        "Sure,",
        "I can help.",
        "Can I have your full name or patient ID?",
    ]
    chunker = SentenceChunker()
    assert chunker.push("Sure,") == []  # a comma ends it only once whitespace follows
    assert chunker.push(" I") == ["Sure,"]  # one token later, not four


@pytest.mark.parametrize(
    ("text", "chunks"),
    [
        ("Yes, sure, okay, done.", ["Yes,", "sure, okay, done."]),
        ("Okay. I moved it to Monday.", ["Okay.", "I moved it to Monday."]),
        ("Of course! Let me look.", ["Of course!", "Let me look."]),
        # Under four characters the opener stays with its sentence.
        ("No, not today. Sorry.", ["No, not today.", "Sorry."]),
        ("Ok. I moved it to Monday.", ["Ok. I moved it to Monday."]),
    ],
)
def test_first_chunk_min_chars_applies_to_clauses_and_sentences(
    text: str, chunks: list[str]
) -> None:
    assert _whole(text) == chunks


def test_only_the_first_chunk_is_cut_early_later_chunks_are_whole_sentences() -> None:
    text = "Thanks for waiting, I found your appointment, and it is on Monday, at noon. "
    text += "Dr. Patel, the cardiologist, will see you: bring your card; arrive early."
    assert _whole(text) == [
        "Thanks for waiting,",
        "I found your appointment, and it is on Monday, at noon.",
        "Dr. Patel, the cardiologist, will see you: bring your card; arrive early.",
    ]
    # A reply whose first sentence has no clause mark goes out whole.
    assert _whole("Let me check that for you. One moment.") == [
        "Let me check that for you.",
        "One moment.",
    ]


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Let me check that for you; one moment please.", "Let me check that for you;"),
        ("Here is what I found for you: two slots.", "Here is what I found for you:"),
        ("I looked at the calendar — two slots are free.", "I looked at the calendar —"),
        ("I looked at the calendar—two slots are free.", "I looked at the calendar—"),
        ("I looked at the calendar - two slots are free.", "I looked at the calendar -"),
    ],
)
def test_first_chunk_clause_marks(text: str, first: str) -> None:
    assert _whole(text)[0] == first


def test_no_clause_cut_inside_numbers_or_before_min_length() -> None:
    assert _whole("That is 1,000 points or 10:30 today, right now.") == [
        "That is 1,000 points or 10:30 today,",
        "right now.",
    ]
    assert _whole("Yes, sure, okay, done.", ChunkerSettings(first_chunk_min_chars=20)) == [
        "Yes, sure, okay, done."
    ]
    assert _whole("Ranges like 10-20 and 5–6 stay whole.") == [
        "Ranges like 10-20 and 5–6 stay whole."
    ]


def test_first_chunk_max_words_cuts_after_that_many_words_without_a_boundary() -> None:
    two = ChunkerSettings(first_chunk_max_words=2)
    text = "I can help with appointments, lab results and referrals. What do you need?"
    assert _pieces(_words(text), two) == [
        "I can",
        "help with appointments, lab results and referrals.",  # never cut by words again
        "What do you need?",
    ]
    # A boundary within the words wins; markup and list markers are not words.
    assert _whole("Sure, I can help with that.", two) == ["Sure,", "I can help with that."]
    assert _whole("- **Your** appointment is on Monday.", two) == [
        "Your appointment",
        "is on Monday.",
    ]
    chunker = SentenceChunker(two)
    assert chunker.push("I can") == []  # "can" may go on ("candidate"): wait for a space
    assert chunker.push(" help") == ["I can"]


def test_max_chunk_chars_cuts_at_the_last_space() -> None:
    text = "word " * 120
    chunks = _whole(text)
    assert all(len(c) <= 250 for c in chunks)
    assert chunks[0] == ("word " * 50).strip()  # 249 chars; the next space is at 250
    assert " ".join(chunks) == text.strip()
    settings = ChunkerSettings(max_chunk_chars=40)
    assert _whole("x" * 100, settings) == ["x" * 40, "x" * 40, "x" * 20]


# ---------------------------------------------------------------- newlines and markdown


def test_newlines_are_boundaries_and_markdown_is_stripped() -> None:
    text = (
        "Here are your options for today:\n\n"
        "1. **Reschedule** the appointment\n"
        "2. Cancel the visit entirely\n"
        "- Talk to a *nurse* on call\n"
        "* Use `the portal` instead\n\n"
        "## Next\n"
        "Which one would you like?"
    )
    assert _whole(text) == [
        "Here are your options for today:",
        "Reschedule the appointment",
        "Cancel the visit entirely",
        "Talk to a nurse on call",
        "Use the portal instead",
        "Next, Which one would you like?",  # the short heading merged forward
    ]


def test_paragraph_break_ends_a_chunk_without_punctuation() -> None:
    assert _whole("Your booking is confirmed\n\nAnything else I can do") == [
        "Your booking is confirmed",
        "Anything else I can do",
    ]


def test_numbered_marker_mid_line_is_a_sentence_end() -> None:
    assert _whole("The total comes to 2. Shall I book it?")[0] == "The total comes to 2."


# ---------------------------------------------------------------- streaming


SETTINGS = [
    None,
    ChunkerSettings(first_chunk_max_words=2),
    ChunkerSettings(first_chunk_min_chars=20),
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("text", REPLIES)
def test_character_by_character_equals_whole_text(
    text: str, settings: ChunkerSettings | None
) -> None:
    assert _pieces(list(text), settings) == _whole(text, settings)


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("text", REPLIES)
def test_word_pieces_equal_whole_text(text: str, settings: ChunkerSettings | None) -> None:
    assert _pieces(_words(text), settings) == _whole(text, settings)


@pytest.mark.parametrize("settings", SETTINGS)
def test_random_splits_equal_whole_text(settings: ChunkerSettings | None) -> None:
    rng = random.Random(20240501)
    for text in REPLIES:
        for _ in range(20):
            cuts = sorted(rng.sample(range(1, max(len(text), 2)), k=min(8, max(len(text) - 1, 0))))
            pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            assert _pieces(pieces, settings) == _whole(text, settings)


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("text", REPLIES)
def test_chunks_are_stripped_non_empty_and_keep_every_word(
    text: str, settings: ChunkerSettings | None
) -> None:
    chunks = _whole(text, settings)
    assert all(c and c == c.strip() and len(c) <= 250 for c in chunks)
    spoken = re.sub(r"[^A-Za-z]", "", "".join(chunks))
    assert spoken == re.sub(r"[^A-Za-z]", "", text)


def test_flush_ends_the_reply_and_resets() -> None:
    chunker = SentenceChunker()
    assert chunker.push("Thanks for calling the clinic, how can I help") == [
        "Thanks for calling the clinic,"
    ]
    assert chunker.flush() == ["how can I help"]
    assert chunker.flush() == []
    # A new reply: its first chunk may again be cut at a clause boundary.
    assert chunker.push("Of course, let me look that up for you, one moment.") == ["Of course,"]
    assert chunker.flush() == ["let me look that up for you, one moment."]


def test_empty_input() -> None:
    chunker = SentenceChunker()
    assert chunker.push("") == []
    assert chunker.flush() == []
    assert _whole("   \n\n  ") == []
    assert _whole("**") == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_chunk_chars": 0},
        {"first_chunk_min_chars": 0},
        {"first_chunk_max_words": 0},
        {"max_chunk_chars": 5},
        {"min_chunk_chars": 300},
    ],
)
def test_settings_reject_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ChunkerSettings(**kwargs)
