"""Sentence chunker between the LLM's streamed text and TTS.

TTS sounds natural when it gets whole sentences, but waiting for the whole reply costs
latency. :class:`SentenceChunker` takes the LLM's text deltas as they stream and hands out
each chunk as soon as its end is certain; the first chunk of a reply may be cut early at a
clause boundary ("Sure," "Yes,") so that speech starts sooner, and every later chunk is a
whole sentence.

The output depends only on the text, never on how it was split into deltas: every decision
looks at a bounded amount of text after the candidate boundary and waits for it to arrive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ChunkerSettings", "SentenceChunker"]

_TERMINATORS = ".!?…"
#: Closing quotes and brackets that stay with the sentence they end ('"stop." Then'), plus
#: markdown emphasis and code marks ("**Done.** Next"), which are removed anyway.
_CLOSERS = "\"')]}”’»*`"
_OPENERS = "\"'([{“‘«*`"
#: Not sentence ends when followed by whitespace (compared lower-case).
_ABBREVIATIONS = frozenset(
    {
        # titles and name suffixes
        "dr.", "mr.", "mrs.", "ms.", "mx.", "prof.", "st.", "jr.", "sr.", "rev.", "hon.",
        "gen.", "col.", "capt.", "lt.", "sgt.", "mt.",
        # Latin and time
        "vs.", "etc.", "e.g.", "i.e.", "a.m.", "p.m.", "approx.", "dept.",
        # months (May has no abbreviation)
        "jan.", "feb.", "mar.", "apr.", "jun.", "jul.", "aug.", "sep.", "sept.", "oct.",
        "nov.", "dec.",
    }
)  # fmt: skip
#: Abbreviations only when a number follows ("No. 5" but "No. I can't."); case-sensitive.
_NUMBER_ABBREVIATIONS = frozenset({"No.", "Nos."})
_CLAUSE_MARKS = ",;:"

_LIST_MARKER = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+")
_HEADING = re.compile(r"^[ \t]*#{1,6}[ \t]+")
_RULE = re.compile(r"^[ \t]*([-*_=])\1{2,}[ \t]*$")


@dataclass(frozen=True, slots=True)
class ChunkerSettings:
    """Length limits of :class:`SentenceChunker`, in characters of the cleaned chunk.

    - ``first_chunk_min_chars=4``: the first chunk of a reply ends at its first clause
      boundary (``,`` ``;`` ``:`` followed by whitespace, ``—``, or a spaced ``-``/``–``) or
      sentence end once it is this long, so TTS starts on an opener ("Sure,", "Yes,",
      "Okay.") instead of the whole first sentence. Later chunks are whole sentences.
      Measured with bench/ttfa.py (the LLM simulator's replies, one word every 34 ms): the
      first chunk of "Sure, I can help. Can I have your full name or patient ID?" goes to
      TTS 34 ms after the first token instead of 136 ms with the previous default (20), and
      when each chunk is synthesized as soon as it is emitted, every next chunk of those
      replies is ready before the one playing ends. "No,", "So," and "Hi," (3) stay with
      their sentence: a one-word opener covers only ~10 words of generation at 34 ms per
      token, and the next chunk is a whole sentence ("Yes," then a 16-word sentence leaves a
      pause of ~250 ms after "Yes," even then).
    - ``first_chunk_max_words=None``: when set, a first chunk that has this many words and
      no boundary yet is cut after its last word, mid-phrase. Off by default: on the
      simulator's "I can help with appointments, lab results, ..." 2 words ("I can" |
      "help with ...") would save 102 ms of the 170 ms the first comma costs, but the next
      sentence is then not ready before "I can" has played in 18 of 29 replies even with
      look-ahead synthesis, and it splits names ("Dr. Sarah" | "Johnson ..."); 3 words save
      68 ms and still cut mid-phrase ("I can help" | "with appointments, ...").
    - ``min_chunk_chars=10``: a sentence shorter than this is not sent alone but merged into
      the next one (the first chunk's sentences need only ``first_chunk_min_chars`` when that
      is smaller); 10 is the minimum sentence length of "Building Enterprise Realtime Voice
      Agents from Scratch" (Salesforce AI Research), §4.5 "The Sentence Buffer".
    - ``max_chunk_chars=250``: text that reaches this length without a boundary is cut at
      its last whitespace (or hard at the limit if there is none), bounding TTS latency.

    Raises:
        ValueError: ``min_chunk_chars`` < 1, ``first_chunk_min_chars`` < 1,
            ``first_chunk_max_words`` < 1, or either minimum above ``max_chunk_chars``.
    """

    first_chunk_min_chars: int = 4
    first_chunk_max_words: int | None = None
    min_chunk_chars: int = 10
    max_chunk_chars: int = 250

    def __post_init__(self) -> None:
        if self.min_chunk_chars < 1 or self.first_chunk_min_chars < 1:
            raise ValueError("chunk minimums must be at least 1 character")
        if self.first_chunk_max_words is not None and self.first_chunk_max_words < 1:
            raise ValueError("first_chunk_max_words must be at least 1 (or None)")
        if max(self.min_chunk_chars, self.first_chunk_min_chars) > self.max_chunk_chars:
            raise ValueError(
                f"max_chunk_chars ({self.max_chunk_chars}) must be at least min_chunk_chars "
                f"({self.min_chunk_chars}) and first_chunk_min_chars "
                f"({self.first_chunk_min_chars})"
            )


class SentenceChunker:
    """Turns one streamed LLM reply into TTS-ready chunks (stripped, non-empty strings).

    Boundaries:

    - A sentence ends after a run of ``.`` ``!`` ``?`` ``…`` (so ``?!``, ``!!`` and ``...``
      too), plus any closing quotes or brackets, when whitespace follows. The end is known
      only once that whitespace arrives, or at :meth:`flush`.
    - Not a sentence end: an abbreviation from the list above (``Dr.``, ``e.g.``, ``a.m.``,
      ``Jan.`` ...), ``No.``/``Nos.`` before a number, a single capital initial other than
      ``I`` (``J. Smith``), or a numbered-list marker at the start of a line (``2. ``).
      Decimals and times (``3.5``, ``10.30``, ``9:00``) have no whitespace after the mark.
      The scan always resumes after a rejected candidate, so later boundaries still count.
    - A line break is a boundary (paragraphs and list items are separate chunks).
    - A chunk shorter than ``min_chunk_chars`` is not emitted; its text merges forward into
      the next chunk.
    - Only for the first chunk of a reply: a clause boundary, or a sentence end, once the
      chunk has ``first_chunk_min_chars``; with ``first_chunk_max_words``, also the
      whitespace after that many words.
    - ``max_chunk_chars`` forces a cut at the last whitespace.

    Chunks are cleaned for speech: list markers, headings, horizontal rules, ``*`` and
    backticks are removed, whitespace is collapsed, and a line that a chunk joins to the
    next without punctuation gets a comma so TTS pauses there.

    One instance per reply stream; :meth:`flush` ends the reply and resets the chunker for
    the next one. Not thread-safe.
    """

    def __init__(self, settings: ChunkerSettings | None = None) -> None:
        self.settings = settings if settings is not None else ChunkerSettings()
        self._reset()

    def _reset(self) -> None:
        self._buf = ""
        # Everything in _buf before _pos has been decided not to be a boundary.
        self._pos = 0
        self._first = True
        # Whether _buf[0] is at the start of a line (list markers are only stripped there).
        self._line_start = True

    def push(self, text_delta: str) -> list[str]:
        """Add the next piece of the reply; return the chunks completed by it (maybe none)."""
        if not text_delta:
            return []
        self._buf += text_delta
        return self._scan(eof=False)

    def flush(self) -> list[str]:
        """End of the reply: return the remaining chunks and reset for a new reply."""
        chunks = self._scan(eof=True)
        rest = _clean(self._buf, line_start=self._line_start)
        if rest:
            chunks.append(rest)
        self._reset()
        return chunks

    # -------------------------------------------------------------- scanning

    def _scan(self, *, eof: bool) -> list[str]:
        """Emit every chunk whose end is decided; with ``eof`` the text end is whitespace."""
        out: list[str] = []
        self._strip_head()
        buf, i = self._buf, self._pos
        limit = self.settings.max_chunk_chars
        while i < len(buf):
            decision = None if i >= limit else self._boundary_at(i, eof=eof)
            if i >= limit or (decision is not None and (decision[0] or 0) > limit):
                # No boundary within buf[:limit] (or one whose closing marks run past it):
                # cut at the last whitespace instead.
                chunk = self._emit(_last_space(buf, limit) or limit)
                if chunk:
                    out.append(chunk)
                buf, i = self._buf, self._pos
                continue
            if decision is None:
                break  # the text that decides this candidate has not arrived yet
            cut, next_i, min_chars = decision
            if cut is not None:
                chunk = _clean(buf[:cut], line_start=self._line_start)
                if len(chunk) >= min_chars:
                    out.append(self._emit(cut))
                    buf, i = self._buf, self._pos
                    continue
                # Too short: the fragment merges forward and the scan moves past it.
            i = next_i
        self._pos = i
        return out

    def _boundary_at(self, i: int, *, eof: bool) -> tuple[int | None, int, int] | None:
        """Classify ``_buf[i]``: ``(cut or None, next scan index, min chars)``, None = wait."""
        buf = self._buf
        s = self.settings
        c = buf[i]
        if c in _TERMINATORS:
            end = i + 1
            while end < len(buf) and buf[end] in _TERMINATORS:
                end += 1
            while end < len(buf) and buf[end] in _CLOSERS:
                end += 1
            if end >= len(buf) and not eof:
                return None
            if end < len(buf) and not buf[end].isspace():
                return None, end, 0
            ends = self._is_sentence_end(i, end, eof=eof)
            if ends is None:
                return None
            shortest = s.min_chunk_chars
            if self._first:
                shortest = min(shortest, s.first_chunk_min_chars)
            return (end if ends else None), end, shortest
        if c == "\n":
            return i + 1, i + 1, s.min_chunk_chars
        if not self._first:
            return None, i + 1, 0
        if c in " \t" and s.first_chunk_max_words is not None and i and not buf[i - 1].isspace():
            words = len(_clean(buf[:i], line_start=self._line_start).split())
            if words >= s.first_chunk_max_words:
                return i, i + 1, s.first_chunk_min_chars
            return None, i + 1, 0
        if c == "—":
            return i + 1, i + 1, s.first_chunk_min_chars
        spaced_dash = c in "-–" and i > 0 and buf[i - 1] == " " and not self._at_line_start(i)
        if c in _CLAUSE_MARKS or spaced_dash:
            end = i + 1
            while end < len(buf) and buf[end] in _CLOSERS:
                end += 1
            if end >= len(buf):
                # At the end of the reply the rest is one chunk anyway.
                return (None, end, 0) if eof else None
            if buf[end].isspace():
                return end, end, s.first_chunk_min_chars
            return None, end, 0
        return None, i + 1, 0

    def _is_sentence_end(self, i: int, end: int, *, eof: bool) -> bool | None:
        """Whether the terminator run ``_buf[i:end]`` (whitespace follows) ends a sentence.

        Returns None when the answer depends on text that has not arrived yet.
        """
        buf = self._buf
        if buf[i] != "." or (i + 1 < end and buf[i + 1] in _TERMINATORS):
            return True  # ! ? … and runs like ?! or ... always end a sentence
        start = i
        while start > 0 and not buf[start - 1].isspace():
            start -= 1
        while start < i and buf[start] in _OPENERS:
            start += 1
        word = buf[start:i]
        if f"{word.lower()}." in _ABBREVIATIONS:
            return False
        if len(word) == 1 and word.isalpha() and word.isupper() and word != "I":
            return False  # an initial, as in "J. Smith"
        if word.isdigit() and self._at_line_start(start):
            return False  # a numbered-list marker
        if f"{word}." in _NUMBER_ABBREVIATIONS:
            after = end
            while after < len(buf) and buf[after].isspace():
                after += 1
            if after >= len(buf):
                return True if eof else None
            return not (buf[after].isdigit() or buf[after] == "#")
        return True

    def _at_line_start(self, index: int) -> bool:
        j = index - 1
        while j >= 0 and self._buf[j] in " \t":
            j -= 1
        return self._line_start if j < 0 else self._buf[j] == "\n"

    # -------------------------------------------------------------- emitting

    def _emit(self, cut: int) -> str:
        """Remove ``_buf[:cut]`` and return it cleaned; the next chunk is no longer first."""
        chunk = _clean(self._buf[:cut], line_start=self._line_start)
        self._line_start = self._buf[cut - 1] == "\n"
        self._buf = self._buf[cut:]
        self._pos = 0
        self._first = False
        self._strip_head()
        return chunk

    def _strip_head(self) -> None:
        """Drop leading whitespace, remembering whether it held a line break."""
        stripped = self._buf.lstrip()
        removed = len(self._buf) - len(stripped)
        if removed:
            if "\n" in self._buf[:removed]:
                self._line_start = True
            self._buf = stripped
            self._pos = max(0, self._pos - removed)


def _last_space(text: str, limit: int) -> int:
    """Index of the last whitespace in ``text[1:limit + 1]``, or 0 if there is none."""
    for j in range(min(limit, len(text) - 1), 0, -1):
        if text[j].isspace():
            return j
    return 0


def _clean(text: str, *, line_start: bool) -> str:
    """Make ``text`` speakable: drop markdown markup, collapse whitespace, join lines."""
    parts: list[str] = []
    for n, line in enumerate(text.split("\n")):
        if n > 0 or line_start:
            line = _RULE.sub("", line)
            line = _HEADING.sub("", line)
            line = _LIST_MARKER.sub("", line)
        line = " ".join(line.replace("*", "").replace("`", "").split())
        if line:
            parts.append(line)
    # A line break is a pause: keep one (a comma) where the line has no punctuation of its own.
    for k in range(len(parts) - 1):
        if parts[k][-1].isalnum():
            parts[k] += ","
    return " ".join(parts)
