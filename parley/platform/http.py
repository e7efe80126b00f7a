"""HTTP helpers shared by the dashboard and the API: files served with byte ranges.

Browsers fetch ``<audio>`` sources with ``Range: bytes=0-`` and seek with further ranges;
without ``206 Partial Content`` answers Chromium cannot seek a WAV. Django's ``FileResponse``
does not answer ranges, hence :func:`ranged_file_response` (RFC 9110 §14: one range per
request; multi-range requests get the whole file, which the RFC allows).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK_BYTES = 64 * 1024


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte positions (inclusive) of a ``Range`` header for a file of
    ``size`` bytes; ``None`` when the header is absent, malformed or has several ranges (serve
    the whole file). Raises ``ValueError`` when the range cannot be satisfied (→ 416)."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # a suffix: the last N bytes
        length = int(last_text)
        if length == 0:
            raise ValueError("empty suffix range")
        return max(size - length, 0), size - 1
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or first > last:
        raise ValueError(f"range {header!r} outside {size} bytes")
    return first, last


def ranged_file_response(
    request: HttpRequest, path: Path, *, content_type: str, filename: str | None = None
) -> HttpResponse:
    """Serve ``path`` whole (200) or the requested byte range (206), with ``Accept-Ranges``.

    ``filename``: sent as an attachment name when given (downloads), inline otherwise.
    Raises ``FileNotFoundError`` when the file is missing.
    """
    size = path.stat().st_size
    try:
        span = byte_range(request.headers.get("Range", ""), size)
    except ValueError:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    disposition = f'attachment; filename="{filename}"' if filename else "inline"
    if span is None:
        whole = FileResponse(path.open("rb"), content_type=content_type)
        whole["Accept-Ranges"] = "bytes"
        whole["Content-Disposition"] = disposition
        return whole
    first, last = span
    partial = StreamingHttpResponse(
        _read(path, first, last - first + 1), status=206, content_type=content_type
    )
    partial["Content-Range"] = f"bytes {first}-{last}/{size}"
    partial["Content-Length"] = str(last - first + 1)
    partial["Accept-Ranges"] = "bytes"
    partial["Content-Disposition"] = disposition
    return partial


def _read(path: Path, offset: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(offset, os.SEEK_SET)
        while length > 0:
            chunk = handle.read(min(_CHUNK_BYTES, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


def download_starts(request: HttpRequest) -> bool:
    """Whether this request starts a download or a playback (no ``Range``, or one from byte
    0), so it is audited; players and download managers fetch the rest in further ranges,
    which are not."""
    range_header = request.headers.get("Range", "")
    return not range_header or range_header.replace(" ", "").startswith("bytes=0-")


def client_address(request: HttpRequest) -> str:
    """The client's address: ``PARLEY_CLIENT_ADDRESS_HEADER``'s first entry behind a trusted
    proxy, else ``REMOTE_ADDR``."""
    header = settings.PARLEY_CLIENT_ADDRESS_HEADER
    if header and request.META.get(header):
        return request.META[header].split(",")[0].strip()
    return request.META.get("REMOTE_ADDR", "")
