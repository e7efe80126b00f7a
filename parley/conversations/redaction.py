"""Redaction of personal data in transcripts: phone numbers, e-mail addresses, dates of birth.

Used by bulk exports with ``redact`` set (docs/reports.md, "Redaction"). Rules, in the order
they are applied:

- **dates** with a day, a month and a year: ISO ``1985-03-04`` / ``1985/03/04``; numeric
  ``03/04/1985``, ``04.03.1985``, ``3-4-85`` (day and month in either order); written
  ``March 4, 1985``, ``4th of March 1985``, ``Mar. 4 1985``; spoken ``March fourth nineteen
  eighty five``, ``the fourth of March, two thousand and three``. They become ``[DOB]`` when the
  text right around them talks of birth (``born``, ``birth``, ``DOB``, ``birthday``) and
  ``[DATE]`` otherwise: a date of birth cannot be told from an appointment date without that
  context, and a full date next to a name is enough to identify a person (HIPAA's Safe Harbor
  method removes every date element but the year). A date without a year (``March 4``, ``the
  fourth``) is kept, and so are ISO 8601 timestamps with a time (``2026-03-04T10:30:00``: the
  machine's own clock) unless the text around them talks of birth;
- **e-mail addresses**: ``name@example.com`` and spoken ``john dot smith at example dot com``
  (a known top-level domain must end it) → ``[EMAIL]``;
- **phone numbers** → ``[PHONE]``: international ``+44 20 7946 0958`` / ``+11557762449`` (8–15
  digits after the ``+``), North American ``(555) 123-4567``, ``555.123.4567``,
  ``1-800-555-0199``, ``5551234567``, local ``555-1001``; and spoken digits, at least seven in
  a row (``five five five, one two three four``, ``double five``, ``oh``; digit groups may be
  mixed in: ``five five five 1234``).

Left alone on purpose: times (``10:30``), prices (``$12.50``, ``1,299.00``), quantities, and the
identifiers of the scenario data (``ORD-1042``, ``O1001``, ``P2001``, ``USR-000001``,
``SUB-123456``, ``TRK1001``): a number glued to letters or a hyphenated prefix is never a phone
number, and those identifiers have at most six digits. Names, postal addresses and ID numbers
are **not** redacted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

PHONE = "[PHONE]"
EMAIL = "[EMAIL]"
DOB = "[DOB]"
DATE = "[DATE]"

#: String values under these keys are kept as they are: the export's own bookkeeping (ids,
#: the call's clock), never something a caller said.
PRESERVED_KEYS = frozenset({"type", "format", "conversation_id", "ts", "started_at", "ended_at"})

# Words -------------------------------------------------------------------------------------

_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12,
    "dec": 12,
}  # fmt: skip
_UNITS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS = (
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_ORDINAL_UNITS = (
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
)  # fmt: skip
_ORDINAL_TEENS = (
    "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
    "seventeenth", "eighteenth", "nineteenth",
)  # fmt: skip


def _alt(words: tuple[str, ...] | list[str]) -> str:
    # Longest first, so "fourteen" is not read as "four" + "teen".
    return "(?:" + "|".join(sorted(words, key=len, reverse=True)) + ")"


_SEP = r"[\s-]+"
_UNIT = _alt(_UNITS)
_TEEN = _alt(_TEENS)
_TEN = _alt(_TENS)
_MONTH = _alt(list(_MONTHS)) + r"\.?"
# Day of the month: "4", "4th", "fourth", "twenty-first", "four", "thirty one".
_DAY_WORD = (
    rf"(?:(?:twenty|thirty){_SEP}{_alt(_ORDINAL_UNITS)}|twentieth|thirtieth|{_alt(_ORDINAL_TEENS)}"
    rf"|{_alt(_ORDINAL_UNITS)}|(?:twenty|thirty){_SEP}{_UNIT}|twenty|thirty|{_TEEN}|{_UNIT})"
)
_DAY = rf"(?:\d{{1,2}}(?:st|nd|rd|th)?|{_DAY_WORD})"
# Year: "1985", "'85", "nineteen eighty-five", "nineteen oh five", "two thousand and three".
_YEAR_WORDS = (
    rf"(?:(?:eighteen|nineteen|twenty){_SEP}(?:hundred|(?:oh|o){_SEP}{_UNIT}|{_TEEN}"
    rf"|{_TEN}(?:{_SEP}{_UNIT})?)"
    rf"|two{_SEP}thousand(?:{_SEP}(?:and{_SEP})?(?:{_TEEN}|{_TEN}(?:{_SEP}{_UNIT})?|{_UNIT}))?)"
)
_YEAR = rf"(?:(?:19|20)\d\d|'\d\d|{_YEAR_WORDS})"

_DATE_PATTERNS = (
    # ISO 8601 calendar date (alone: a timestamp's date is kept, see _date).
    r"(?<![\w/.-])(?P<iso>(?:19|20)\d\d(?P<s1>[-/])(?:0?[1-9]|1[0-2])(?P=s1)"
    r"(?:0?[1-9]|[12]\d|3[01]))"
    r"(?P<time>T\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?(?![\w/]|[.-]\d)",
    # Numeric day and month in either order, then the year (four digits after dots, so
    # version numbers such as 2.1.10 are kept).
    r"(?<![\w/.-])(?P<a>\d{1,2})(?:(?P<s2>[/-])(?P<b>\d{1,2})(?P=s2)(?P<y>(?:19|20)\d\d|\d\d)"
    r"|\.(?P<b2>\d{1,2})\.(?:19|20)\d\d)(?![\w/]|[.-]\d)",
    # Month day, year: "March 4, 1985", "March the fourth nineteen eighty five".
    rf"\b{_MONTH}\s+(?:the\s+)?{_DAY}(?:,\s*|\s+)(?:of\s+)?{_YEAR}\b",
    # Day month year: "4 March 1985", "the 4th of March, 1985".
    rf"\b(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b",
)
_DATE = re.compile("|".join(f"(?:{p})" for p in _DATE_PATTERNS), re.IGNORECASE)
_BIRTH_CUE = re.compile(r"birth|(?<![a-z])(?:born|d\.?o\.?b)(?![a-z])", re.IGNORECASE)
#: How far before (and after) a date a birth cue is looked for (characters).
_CUE_BEFORE = 40
_CUE_AFTER = 24

_TLDS = _alt(
    ["com", "org", "net", "edu", "gov", "io", "co", "uk", "de", "fr", "es", "it", "nl", "us",
     "ca", "au", "info", "biz", "me"]
)  # fmt: skip
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9&_-]+(?:\.[A-Za-z0-9&_-]+)*\.[A-Za-z]{2,}\b"
    # Spoken: "john dot smith at example dot com" (bounded repeats: linear time).
    r"|\b[a-z0-9]+(?:(?:\s+(?:dot|underscore|dash|hyphen)\s+|[._-])[a-z0-9]+){0,6}"
    rf"\s+at\s+[a-z0-9-]+(?:(?:\s+dot\s+|\.)[a-z0-9-]+){{0,4}}(?:\s+dot\s+|\.){_TLDS}\b",
    re.IGNORECASE,
)

# A phone number never touches a word character, a "/" or a hyphenated prefix ("ORD-1042"),
# and is not followed by more digits after a separator.
_BEFORE = r"(?<![\w+/.-])"
_AFTER = r"(?![\w/]|[-.]\d)"
_PHONE = re.compile(
    _BEFORE
    + r"(?:"
    + r"(?P<intl>\+\d{1,3}(?:[\s.-]?\(?\d{1,4}\)?){1,6})"
    + r"|(?:1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-]?)\d{3}[\s.-]?\d{4}"
    + r"|\d{3}[.-]\d{4}"
    + r")"
    + _AFTER
)

_DIGIT_WORDS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_DIGIT_WORD = _alt(list(_DIGIT_WORDS))
_SPOKEN_DIGIT = rf"(?:(?:double|triple)[\s-]+{_DIGIT_WORD}|{_DIGIT_WORD}|\d{{1,4}})"
_SPOKEN_RUN = re.compile(
    rf"\b{_SPOKEN_DIGIT}(?:(?:\s+dash\s+|[\s,.-])+{_SPOKEN_DIGIT})+\b", re.IGNORECASE
)
_SPOKEN_TOKEN = re.compile(rf"(double|triple)[\s-]+({_DIGIT_WORD})|{_DIGIT_WORD}|\d+", re.I)
#: Spoken digits in a row from which a run is taken for a phone number.
SPOKEN_PHONE_MIN_DIGITS = 7


def _date(match: re.Match[str]) -> str:
    text = match.group(0)
    whole = match.string
    start, end = match.span()
    around = whole[max(0, start - _CUE_BEFORE) : start] + " " + whole[end : end + _CUE_AFTER]
    birth = bool(_BIRTH_CUE.search(around))
    if match.group("iso") is not None:
        if match.group("time") is not None and not birth:  # a timestamp: the machine's clock
            return text
    elif match.group("a") is not None:
        a, b = int(match.group("a")), int(match.group("b") or match.group("b2"))
        plausible = (1 <= a <= 12 and 1 <= b <= 31) or (1 <= a <= 31 and 1 <= b <= 12)
        if not plausible:
            return text
    return DOB if birth else DATE


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    if match.group("intl") is not None:
        digits = sum(c.isdigit() for c in text)
        if not 8 <= digits <= 15:
            return text
    return PHONE


def _spoken_phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = 0
    words = 0
    single_digits_only = True
    for token in _SPOKEN_TOKEN.finditer(text):
        word = token.group(0).lower()
        if token.group(1):
            digits += 2 if token.group(1).lower() == "double" else 3
            words += 1
        elif word in _DIGIT_WORDS:
            digits += 1
            words += 1
        else:
            digits += len(word)
            single_digits_only = single_digits_only and len(word) == 1
    # Digit groups alone ("2024 01 15", "12.50") are numbers, not a spoken phone number.
    if digits >= SPOKEN_PHONE_MIN_DIGITS and (words or single_digits_only):
        return PHONE
    return text


_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_DATE, _date),
    (_EMAIL, lambda m: EMAIL),
    (_PHONE, _phone),
    (_SPOKEN_RUN, _spoken_phone),
)


def redact_text(text: str) -> str:
    """``text`` with phone numbers, e-mail addresses and full dates replaced by ``[PHONE]``,
    ``[EMAIL]``, ``[DOB]`` / ``[DATE]`` (module docstring for the exact rules). Idempotent."""
    if not text:
        return text
    for pattern, replace in _RULES:
        text = pattern.sub(replace, text)
    return text


_PHONE_KEY_WORDS = frozenset(
    {"phone", "phones", "telephone", "tel", "mobile", "cell", "cellphone", "fax", "msisdn"}
)


def key_label(key: str) -> str | None:
    """The token a whole value under ``key`` is replaced with, or ``None`` for an ordinary key.

    Keys are split into words (``snake_case``, ``camelCase``, ``kebab-case``): a word
    ``phone`` / ``telephone`` / ``mobile`` / ``cell`` / ``fax`` (``emergency_phone``,
    ``phoneNumber``; not ``microphone``) → ``[PHONE]``; ``email`` anywhere (``primary_email``,
    ``e-mail``) → ``[EMAIL]``; ``birth`` anywhere or a word ``dob`` (``date_of_birth``,
    ``birthDate``, ``dob``) → ``[DOB]``.
    """
    words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower())
    joined = "".join(words)
    if "birth" in joined or "dob" in words:
        return DOB
    if "email" in joined:
        return EMAIL
    if any(w in _PHONE_KEY_WORDS or w.startswith("phone") for w in words):
        return PHONE
    return None


def redact_value(obj: Any) -> Any:
    """A redacted copy of a JSON value (``obj`` itself is not changed).

    Strings go through :func:`redact_text`; dicts and lists are walked. The whole value of a
    key that names personal data (:func:`key_label`) is replaced by its token, whatever it
    is (a string, a number, a nested object), except ``None`` and booleans (``"email_verified":
    true`` says nothing about the person). String values of :data:`PRESERVED_KEYS` are kept.
    Numbers are kept: ``t_ms``, ``duration_ms``, counts.
    """
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, list):
        return [redact_value(item) for item in obj]
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            label = key_label(key) if isinstance(key, str) else None
            if label is not None and value is not None and not isinstance(value, bool):
                out[key] = label
            elif key in PRESERVED_KEYS and isinstance(value, str):
                out[key] = value
            else:
                out[key] = redact_value(value)
        return out
    return obj
