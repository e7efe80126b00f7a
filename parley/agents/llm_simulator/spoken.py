"""Parsing helpers for speech-to-text output: numbers, dates, times and phone numbers.

STT engines give lower-case words with little punctuation: "january fifteenth at nine a m",
"p two zero zero one", "five five five nine eight seven six". :func:`tokens` normalises a
transcript into plain words (digits, and ``h:mm`` times, kept), and the ``find_*`` functions
search the token list. They return ``None`` when nothing is found and never raise.
"""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_YEAR",
    "find_date",
    "find_phone",
    "find_time",
    "normalize",
    "speak_date",
    "spoken_digits",
    "tokens",
]

#: Year assumed when a caller gives a date without one: the hospital seed data is all 2024.
DEFAULT_YEAR = 2024

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4,
    "apr": 4, "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11,
    "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
_MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_ZERO_WORDS = {"oh", "o"}

_NUMERAL = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")


def normalize(text: str) -> str:
    """Lower-case ``text`` and reduce it to words separated by single spaces.

    "a.m."/"a m" become "am" (and "pm" likewise), "h:mm" clock times keep their colon, a
    possessive "'s" and apostrophes are dropped, and every other punctuation mark becomes a
    space: "Dr. Sarah Johnson's, 9:00 A.M." → "dr sarah johnson 9:00 am".
    """
    text = text.lower()
    text = re.sub(r"(\d):(\d\d)", lambda m: f"{m[1]}\x00{m[2]}", text)  # keep clock times
    text = re.sub(r"['’]s\b", "", text)  # possessive: "johnson's" → "johnson"
    text = re.sub(r"[^a-z0-9\x00]+", " ", re.sub(r"['’]", "", text))
    text = text.replace("\x00", ":")
    text = re.sub(r"\b([ap]) m\b", r"\1m", text)
    text = re.sub(r"\b(\d{1,2}(?::\d\d)?)([ap]m)\b", r"\1 \2", text)  # "9am" → "9 am"
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    """``normalize(text)`` split into words."""
    return normalize(text).split()


def spoken_digits(words: list[str], start: int) -> tuple[str, int]:
    """Read a run of digits said one by one or in small groups, from ``words[start]``.

    Returns the digit string and the index after the run ("" and ``start`` when there is
    none). Understands numerals ("555"), digit words, "oh" after the first digit, "double
    five", teens and tens ("twenty oh one" → "2001") and "two thousand one" → "2001".
    """
    digits = ""
    i = start
    n = len(words)
    while i < n:
        word = words[i]
        if word.isdigit():
            digits += word
            i += 1
        elif word in ("double", "triple") and i + 1 < n and words[i + 1] in _UNITS:
            digits += str(_UNITS[words[i + 1]]) * (2 if word == "double" else 3)
            i += 2
        elif word in _UNITS:
            digits += str(_UNITS[word])
            i += 1
        elif word in _ZERO_WORDS and digits:
            digits += "0"
            i += 1
        elif word in _TEENS:
            digits += str(_TEENS[word])
            i += 1
        elif word in _TENS:
            if i + 1 < n and words[i + 1] in _UNITS and _UNITS[words[i + 1]] > 0:
                digits += str(_TENS[word] + _UNITS[words[i + 1]])
                i += 2
            else:
                digits += str(_TENS[word])
                i += 1
        elif word == "thousand" and len(digits) == 1:
            value = int(digits) * 1000
            i += 1
            if i < n and words[i] == "and":
                i += 1
            rest = _small_number(words, i)
            if rest is not None:
                value += rest[0]
                i = rest[1]
            digits = str(value)
        else:
            break
    return digits, i


def _small_number(words: list[str], i: int) -> tuple[int, int] | None:
    """A cardinal or ordinal from 0 to 99 at ``words[i]``: (value, next index) or None."""
    if i >= len(words):
        return None
    word = words[i]
    match = _NUMERAL.fullmatch(word)
    if match:
        return int(match.group(1)), i + 1
    if word in _TENS:
        tens = _TENS[word]
        if i + 1 < len(words):
            following = words[i + 1]
            if following in _UNITS and _UNITS[following] > 0:
                return tens + _UNITS[following], i + 2
            if following in _ORDINALS and _ORDINALS[following] < 10:
                return tens + _ORDINALS[following], i + 2
        return tens, i + 1
    if word.endswith("ieth") and word[:-4] + "y" in _TENS:
        return _TENS[word[:-4] + "y"], i + 1
    for table in (_TEENS, _UNITS, _ORDINALS):
        if word in table:
            return table[word], i + 1
    return None


def _year(words: list[str], i: int) -> tuple[int, int] | None:
    """A year at ``words[i]``: "2024", "twenty twenty four", "two thousand (and) twenty four"."""
    if i >= len(words):
        return None
    word = words[i]
    if re.fullmatch(r"(19|20)\d\d", word):
        return int(word), i + 1
    if word in _TENS or word in _TEENS:
        century = _TENS.get(word) or _TEENS.get(word)
        rest = _small_number(words, i + 1)
        if century in (19, 20) and rest is not None and rest[0] >= 10:
            return century * 100 + rest[0], rest[1]
    if word in _UNITS and i + 1 < len(words) and words[i + 1] == "thousand":
        j = i + 2
        if j < len(words) and words[j] == "and":
            j += 1
        rest = _small_number(words, j)
        if _UNITS[word] == 2:
            return (2000 + rest[0], rest[1]) if rest else (2000, i + 2)
    return None


def _iso(year: int, month: int, day: int) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}"


def find_date(text: str) -> str | None:
    """The first calendar date in ``text`` as ``YYYY-MM-DD`` (year :data:`DEFAULT_YEAR` if
    unsaid). Understands "2024-01-15", "1/15/2024", "january fifteenth twenty twenty four",
    "jan 15", "the fifteenth of january". Relative dates ("next tuesday") are not dates here.
    """
    lowered = text.lower()
    match = re.search(r"\b((?:19|20)\d\d)-(\d{1,2})-(\d{1,2})\b", lowered)
    if match:
        return _iso(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    match = re.search(r"\b(\d{1,2})/(\d{1,2})(?:/((?:19|20)?\d\d))?\b", lowered)
    if match:
        year = int(match.group(3)) if match.group(3) else DEFAULT_YEAR
        year = year + 2000 if year < 100 else year
        return _iso(year, int(match.group(1)), int(match.group(2)))
    words = tokens(text)
    for i, word in enumerate(words):
        if word not in _MONTHS or (word == "may" and not _may_is_month(words, i)):
            continue
        # "the fifteenth of january", "the twenty fifth of january"
        if i >= 2 and words[i - 1] == "of":
            for k in (i - 3, i - 2):
                day = _small_number(words, k) if k >= 0 else None
                if day is not None and day[1] == i - 1 and 1 <= day[0] <= 31:
                    said_year = _year(words, i + 1)
                    return _iso(said_year[0] if said_year else DEFAULT_YEAR, _MONTHS[word], day[0])
        j = i + 1
        if j < len(words) and words[j] == "the":
            j += 1
        day = _small_number(words, j)
        if day is not None and 1 <= day[0] <= 31:
            after = day[1] + (1 if day[1] < len(words) and words[day[1]] in ("of", "in") else 0)
            said_year = _year(words, after)
            return _iso(said_year[0] if said_year else DEFAULT_YEAR, _MONTHS[word], day[0])
    return None


def _may_is_month(words: list[str], i: int) -> bool:
    """Whether "may" is a month: only next to a day number ("may fifth", "fifth of may")."""
    following = _small_number(words, i + 1) if i + 1 < len(words) else None
    return following is not None or (i >= 1 and words[i - 1] == "of")


_PERIOD_WORDS = {"morning": "AM", "afternoon": "PM", "evening": "PM", "night": "PM"}


def find_time(text: str) -> str | None:
    """The first clock time in ``text`` as "H:MM AM" (the hospital data's format).

    Needs a marker: "am"/"pm", "o'clock", "noon", "in the morning/afternoon/evening", or "at"
    before the hour. Without am/pm, 7 to 11 are taken as morning and 12 to 6 as afternoon.
    """
    words = tokens(text)
    for i, word in enumerate(words):
        if word in ("noon", "midday"):
            return "12:00 PM"
        parsed = _clock(words, i)
        if parsed is None:
            continue
        hour, minute, end, explicit = parsed
        period: str | None = None
        if end < len(words) and words[end] in ("am", "pm"):
            period = words[end].upper()
        elif end + 2 < len(words) and words[end] == "in" and words[end + 1] == "the":
            period = _PERIOD_WORDS.get(words[end + 2])
        if period is None and not explicit and not (i >= 1 and words[i - 1] == "at"):
            continue
        if hour > 12:
            if hour > 23 or period == "AM":
                continue
            hour, period = hour - 12, "PM"
        if minute > 59:
            continue
        if period is None:
            period = "AM" if 7 <= hour <= 11 else "PM"
        if hour == 0:
            hour, period = 12, "AM"
        return f"{hour}:{minute:02d} {period}"
    return None


def _clock(words: list[str], i: int) -> tuple[int, int, int, bool] | None:
    """(hour, minute, next index, has "o'clock") for a time starting at ``words[i]``."""
    word = words[i]
    match = _CLOCK.fullmatch(word)
    if match:
        return int(match.group(1)), int(match.group(2)), i + 1, False
    if word.isdigit() and len(word) <= 2:
        hour = int(word)
    elif word in _UNITS and _UNITS[word] > 0:
        hour = _UNITS[word]
    elif word in ("ten", "eleven", "twelve"):
        hour = _TEENS[word]
    else:
        return None
    j = i + 1
    minute = 0
    if j < len(words) and words[j] in _UNITS and not word.isdigit():
        return None  # "five five five ..." is a run of digits (a phone number), not a time
    if j < len(words) and words[j] in ("oclock", "clock"):
        return hour, 0, j + 1, True
    if j + 1 < len(words) and words[j] in _ZERO_WORDS and words[j + 1] in _UNITS:
        return hour, _UNITS[words[j + 1]], j + 2, False
    if j < len(words) and (words[j] in _TENS or words[j] in _TEENS):
        minutes = _small_number(words, j)
        if minutes is not None and 10 <= minutes[0] <= 59:
            minute, j = minutes[0], minutes[1]
    elif j < len(words) and re.fullmatch(r"\d\d", words[j]):
        minute, j = int(words[j]), j + 1
    return hour, minute, j, False


def find_phone(words: list[str]) -> tuple[str, int, int] | None:
    """The first phone number in ``words``: (formatted, start, end) or None.

    Seven digits become "555-9876" and ten digits "555-123-4567", the seed data's format.
    """
    i = 0
    while i < len(words):
        digits, end = spoken_digits(words, i)
        if len(digits) == 7:
            return f"{digits[:3]}-{digits[3:]}", i, end
        if len(digits) == 10:
            return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}", i, end
        i = max(end, i + 1)
    return None


def speak_date(iso: str) -> str:
    """Spoken form of an ISO date: "2024-01-15" → "January 15"; anything else is unchanged."""
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", iso.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        return iso
    return f"{_MONTH_NAMES[int(match.group(2)) - 1]} {int(match.group(3))}"
