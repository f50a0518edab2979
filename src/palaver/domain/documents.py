"""Knowledge-base documents: the object a client reads, the create rules, and chunking.

A document is a file or a website Palaver fetched, turned into text and split
into chunks that conversations retrieve by relevance (storage/document_chunks.py).
The stored body is the object clients read (reference 10, in its field order)
plus the server's own members, which start with `_` and are never shown: the
processing run number (`_run`, which keys the status callbacks), the crawl
settings saved while a recrawl runs with settings of its own, and the epoch of
the last crawl (the recrawl cooldown).

Errors are reported as Tavus documents them: `error_message` holds the error
code (`file_format_unsupported`, ...; the spec: "Error code indicating why
processing failed") and Palaver adds `error_details`, a sentence saying what
went wrong, because a code alone rarely tells a developer what to fix.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from palaver.domain.errors import ValidationFailed

STATUSES = ("started", "processing", "ready", "error", "recrawling")
WORKING = frozenset({"started", "processing", "recrawling"})  # a job is (or will be) on it
DONE = frozenset({"ready", "error"})

# Error codes (reference 10 and the spec's list), what `error_message` holds.
FILE_SIZE_TOO_LARGE = "file_size_too_large"
FILE_FORMAT_UNSUPPORTED = "file_format_unsupported"
INVALID_FILE_URL = "invalid_file_url"
FILE_DOWNLOAD_FAILED = "file_download_failed"
FILE_EMPTY = "file_empty"
DOCUMENT_PROCESSING_FAILED = "document_processing_failed"
WEBSITE_PROCESSING_FAILED = "website_processing_failed"
CHUNKING_FAILED = "chunking_failed"
CONTACT_SUPPORT = "contact_support"

MAX_FILE_BYTES = 50 * 1024 * 1024  # reference 10: "Max 50MB"
MAX_CRAWL_DOCUMENTS = 100  # per account (reference 15)
MAX_CONCURRENT_CRAWLS = 5  # per account (reference 15)
RECRAWL_COOLDOWN_S = 3600.0  # reference 15: "1 h recrawl cooldown"
MAX_TAGS = 50
MAX_TAG_LENGTH = 100

URL_REQUIRED = "Invalid request: document_url is required"
CRAWL_LIMIT_TEXT = (
    f"Crawl document limit reached ({MAX_CRAWL_DOCUMENTS}). Contact support@tavus.io to increase your limit."
)
CONCURRENT_CRAWLS_TEXT = (
    f"Concurrent crawl limit reached ({MAX_CONCURRENT_CRAWLS}). Wait for a crawl in progress to finish and try again."
)
NOT_CRAWLED_TEXT = "Document was not created with crawl configuration"

# The documented object, in the spec's order; then what the SDK sends and Palaver keeps.
FIELD_ORDER = (
    "document_id",
    "document_name",
    "document_url",
    "status",
    "progress",
    "error_message",
    "error_details",
    "created_at",
    "updated_at",
    "callback_url",
    "tags",
    "crawl_config",
    "crawled_urls",
    "last_crawled_at",
    "crawl_count",
    "participant_tags",
    "custom_description",
    "is_customer_support_document",
    "font_size_aware_extraction",
)


def new_document_id() -> str:
    return "d" + secrets.token_hex(6)


class CrawlConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    depth: int = Field(1, ge=1, le=10, description="Link levels followed from the start page (1-10).")
    max_pages: int = Field(10, ge=1, le=100, description="Pages fetched at most, the start page included (1-100).")


Tag = Field(min_length=1, max_length=MAX_TAG_LENGTH)


class CreateDocument(BaseModel):
    """`POST /v2/documents`. Fields Tavus does not document are ignored, so newer clients keep working."""

    model_config = ConfigDict(extra="ignore", strict=True)

    document_url: str = Field(max_length=4096, description="http(s) URL of a file or a web page.")
    document_name: str | None = Field(None, max_length=500)
    callback_url: str | None = Field(None, max_length=4096)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    crawl: CrawlConfig | None = None
    participant_tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    custom_description: str | None = Field(None, max_length=10_000)
    is_customer_support_document: StrictBool = False
    font_size_aware_extraction: StrictBool = False


class PatchDocument(BaseModel):
    """`PATCH /v2/documents/{id}`: plain JSON; any other field is refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    document_name: str | None = Field(None, min_length=1, max_length=500)
    tags: list[str] | None = Field(None, max_length=MAX_TAGS)


class RecrawlDocument(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    crawl: CrawlConfig | None = None


def is_http_url(value: str) -> bool:
    if any(c <= " " or c == "\x7f" for c in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def default_name(url: str) -> str:
    """The name of a document created without one: the file's name, else the site's host."""
    parts = urlsplit(url)
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    return last or parts.hostname or url


def _check_tags(tags: list[str], field: str) -> list[str]:
    for tag in tags:
        if not tag.strip() or len(tag) > MAX_TAG_LENGTH or "," in tag:
            raise ValidationFailed(
                f"Invalid request: {field} must be non-empty strings of at most {MAX_TAG_LENGTH} characters, "
                "without commas"
            )
    return list(dict.fromkeys(tags))  # duplicates dropped, order kept


def _invalid(exc: ValidationError) -> ValidationFailed:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    text = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return ValidationFailed(f"Invalid request: {where}: {text}" if where else f"Invalid request: {text}")


def parse_create(body: dict[str, Any]) -> CreateDocument:
    """The create request, or ValidationFailed with Tavus's `Invalid request: ...` wording."""
    url = body.get("document_url")
    if url is None or (isinstance(url, str) and not url.strip()):
        raise ValidationFailed(URL_REQUIRED)
    try:
        request = CreateDocument.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None
    request.document_url = request.document_url.strip()
    if not is_http_url(request.document_url):
        raise ValidationFailed("Invalid request: document_url must be an http(s) URL")
    if request.callback_url and not is_http_url(request.callback_url):
        raise ValidationFailed("Invalid request: callback_url must be an http(s) URL")
    request.tags = _check_tags(request.tags, "tags")
    request.participant_tags = _check_tags(request.participant_tags, "participant_tags")
    return request


def parse_patch(body: dict[str, Any]) -> PatchDocument:
    try:
        patch = PatchDocument.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        if err.get("type") == "extra_forbidden":
            field = ".".join(str(p) for p in err.get("loc", ()))
            text = f"Invalid request: {field} cannot be updated (only document_name and tags)"
            raise ValidationFailed(text) from None
        raise _invalid(exc) from None
    if patch.tags is not None:
        patch.tags = _check_tags(patch.tags, "tags")
    return patch


def parse_recrawl(body: dict[str, Any]) -> RecrawlDocument:
    try:
        return RecrawlDocument.model_validate(body)
    except ValidationError as exc:
        raise _invalid(exc) from None


def new_document(document_id: str, request: CreateDocument) -> dict[str, Any]:
    """The stored body of a new document (status `started`; the job takes it from there)."""
    crawl = request.crawl.model_dump() if request.crawl is not None else None
    return {
        "document_id": document_id,
        "document_name": request.document_name or default_name(request.document_url),
        "document_url": request.document_url,
        "status": "started",
        "progress": None,
        "error_message": None,
        "error_details": None,
        "callback_url": request.callback_url or "",
        "tags": request.tags,
        "crawl_config": crawl,
        "crawled_urls": None,
        "last_crawled_at": None,
        "crawl_count": 0 if crawl is not None else None,
        "participant_tags": request.participant_tags,
        "custom_description": request.custom_description,
        "is_customer_support_document": request.is_customer_support_document,
        "font_size_aware_extraction": request.font_size_aware_extraction,
        "_run": 1,
    }


def shown(body: dict[str, Any]) -> dict[str, Any]:
    """What clients read: the documented fields in order, never the server's own `_` members."""
    return {key: body.get(key) for key in FIELD_ORDER}


def is_crawl(body: dict[str, Any]) -> bool:
    return body.get("crawl_config") is not None


def cooldown_minutes(last_crawl_epoch: float | None, now: float) -> int:
    """Whole minutes (rounded up) before the document may be recrawled; 0 when it may be now."""
    if last_crawl_epoch is None:
        return 0
    left = last_crawl_epoch + RECRAWL_COOLDOWN_S - now
    return max(0, -int(-left // 60)) if left > 0 else 0


def cooldown_text(minutes: int) -> str:
    unit = "minute" if minutes == 1 else "minutes"
    return f"Recrawl cooldown: please wait {minutes} {unit} before recrawling this document."


def conflict_text(status: str) -> str:
    return f"Document must be in 'ready' or 'error' state to recrawl, current status: {status}"


# chunking -------------------------------------------------------------------------------------

CHUNK_SIZE = 1000  # characters: a paragraph or two, what a retrieval hit should carry
CHUNK_OVERLAP = 150  # the tail of a chunk repeated at the head of the next, so no fact is cut in two
MAX_CHUNKS = 10_000  # ~10 million characters: more is refused (`chunking_failed`), not silently cut

_PARAGRAPHS = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SPACES = re.compile(r"[ \t\f\v\r]+")


def normalise_text(text: str) -> str:
    """Runs of spaces squeezed, lines trimmed, at most one blank line in a row, NULs dropped."""
    text = text.replace("\x00", "")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def _pieces(text: str, size: int) -> list[str]:
    """Text no longer than `size`, cut at spaces where there are any, else hard."""
    pieces: list[str] = []
    while len(text) > size:
        cut = text.rfind(" ", 0, size + 1)
        if cut <= 0:
            cut = size
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        pieces.append(text)
    return pieces


def _units(text: str, size: int) -> list[tuple[str, str]]:
    """(separator before it, unit): paragraphs, or the sentences of a paragraph too long for a chunk."""
    units: list[tuple[str, str]] = []
    for paragraph in _PARAGRAPHS.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        parts = [paragraph] if len(paragraph) <= size else _SENTENCE_END.split(paragraph)
        first = True
        for part in parts:
            for piece in _pieces(part.strip(), size):
                units.append(("\n\n" if first else " ", piece))
                first = False
    return units


def _tail(chunk: str, overlap: int) -> str:
    """The last whole sentences of `chunk` that fit in `overlap` characters ("" if even the last does not)."""
    sentences = [s for s in _SENTENCE_END.split(chunk.rsplit("\n\n", 1)[-1]) if s]
    kept: list[str] = []
    for sentence in reversed(sentences):
        if len(" ".join([sentence, *kept])) > overlap:
            break
        kept.insert(0, sentence)
    return " ".join(kept)


def chunk_text(text: str, size: int = CHUNK_SIZE, overlap: int = CHUNK_OVERLAP) -> list[str]:
    """Split text into chunks of at most `size` characters on paragraph, then sentence, boundaries.

    Consecutive chunks share up to `overlap` characters: the last whole sentences
    of a chunk (of its last paragraph) start the next one, so a passage that
    spans a boundary is found whole in one of them.
    """
    chunks: list[str] = []
    current: list[tuple[str, str]] = []

    def joined(units: list[tuple[str, str]]) -> str:
        return "".join(sep + unit if i else unit for i, (sep, unit) in enumerate(units))

    for unit in _units(normalise_text(text), size):
        if current and len(joined([*current, unit])) > size:
            chunks.append(joined(current))
            tail = _tail(chunks[-1], overlap)
            current = [("", tail)] if tail and len(tail) + len(unit[0]) + len(unit[1]) <= size else []
        current.append(unit)
    if current:
        chunks.append(joined(current))
    return chunks
