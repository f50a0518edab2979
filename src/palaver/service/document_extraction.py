"""From fetched bytes to text: which format a download is, its text, and an HTML page's links.

Formats (reference 10 lists .pdf .txt .docx .doc .png .jpg .pptx .csv .xlsx and
websites): plain text, Markdown and CSV are read as text; HTML through
BeautifulSoup with the standard library's parser (scripts, styles and
navigation chrome dropped); PDF through pypdf. Office files and images are
refused as `file_format_unsupported` with a sentence saying so: extracting them
well needs libraries (or OCR) Palaver does not carry.

The format is taken from the response's media type when it is specific, else
from the URL's extension, else from the content itself (`%PDF-`).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit

from bs4 import BeautifulSoup
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from palaver.domain.documents import DOCUMENT_PROCESSING_FAILED, FILE_FORMAT_UNSUPPORTED

log = logging.getLogger("palaver.documents")

TEXT, MARKDOWN, CSV, HTML, PDF = "text", "markdown", "csv", "html", "pdf"

_BY_MEDIA_TYPE = {
    "text/plain": TEXT,
    "text/markdown": MARKDOWN,
    "text/x-markdown": MARKDOWN,
    "text/csv": CSV,
    "application/csv": CSV,
    "text/html": HTML,
    "application/xhtml+xml": HTML,
    "application/pdf": PDF,
}
_BY_EXTENSION = {
    "txt": TEXT,
    "text": TEXT,
    "md": MARKDOWN,
    "markdown": MARKDOWN,
    "csv": CSV,
    "html": HTML,
    "htm": HTML,
    "pdf": PDF,
}
# Documented formats Palaver recognises but does not extract, by the name a developer knows them by.
_UNSUPPORTED_EXTENSIONS = {
    "doc": "Word (.doc)",
    "docx": "Word (.docx)",
    "pptx": "PowerPoint (.pptx)",
    "ppt": "PowerPoint (.ppt)",
    "xlsx": "Excel (.xlsx)",
    "xls": "Excel (.xls)",
    "png": "image (.png)",
    "jpg": "image (.jpg)",
    "jpeg": "image (.jpeg)",
}
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/x-download"})
# Elements whose text is not the page's content.
_NOISE = ("script", "style", "noscript", "template", "svg", "head", "nav", "iframe", "form")
_BLOCKS = ("p", "div", "section", "article", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote")


class ProcessingError(Exception):
    """Processing failed for a reason the document records: `code` (error_message) and `details`."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass(frozen=True, slots=True)
class Page:
    url: str
    text: str
    links: list[str]  # same-site or not: the crawler decides


def detect_format(url: str, media_type: str, content: bytes) -> str:
    """One of TEXT, MARKDOWN, CSV, HTML, PDF; ProcessingError(file_format_unsupported) otherwise."""
    if media_type in _BY_MEDIA_TYPE:
        return _BY_MEDIA_TYPE[media_type]
    extension = urlsplit(url).path.rsplit("/", 1)[-1].rpartition(".")[2].lower()
    if media_type in _GENERIC_TYPES or media_type.startswith("text/"):
        if extension in _BY_EXTENSION:
            return _BY_EXTENSION[extension]
        if content.startswith(b"%PDF-"):
            return PDF
        if media_type.startswith("text/"):
            return TEXT
    if extension in _UNSUPPORTED_EXTENSIONS or media_type.startswith("image/"):
        what = _UNSUPPORTED_EXTENSIONS.get(extension) or f"image ({media_type})"
        raise ProcessingError(FILE_FORMAT_UNSUPPORTED, f"Palaver does not extract text from {what} files")
    what = media_type or "an unknown type"
    raise ProcessingError(
        FILE_FORMAT_UNSUPPORTED, f"{url} is {what}; supported: .txt, .md, .csv, .html (web pages) and .pdf"
    )


def decode_text(content: bytes) -> str:
    """UTF-8 (a BOM dropped), else Windows-1252, which decodes any byte: text files rarely say their charset."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return content.decode("cp1252", errors="replace")


def extract(url: str, media_type: str, content: bytes) -> Page:
    """The text of one download (and its links, for an HTML page)."""
    kind = detect_format(url, media_type, content)
    if kind == HTML:
        return html_page(url, content)
    if kind == PDF:
        return Page(url, pdf_text(content), [])
    return Page(url, decode_text(content), [])


def html_page(url: str, content: bytes) -> Page:
    """The visible text of a page, block elements on lines of their own, and its links made absolute."""
    soup = BeautifulSoup(content, "html.parser")
    links = []
    for anchor in soup.find_all("a", href=True):
        href = str(anchor.get("href", "")).strip()
        if href and not href.startswith(("mailto:", "javascript:", "tel:", "#")):
            links.append(urldefrag(urljoin(url, href)).url)
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for element in soup.find_all(_NOISE):
        element.decompose()
    for element in soup.find_all(_BLOCKS):
        element.insert_before("\n\n")
        element.insert_after("\n\n")
    body = soup.get_text(" ")
    text = f"{title}\n\n{body}" if title and title not in body else body
    return Page(url, text, links)


def pdf_text(content: bytes) -> str:
    """The text of every page, pages separated by blank lines."""
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            raise ProcessingError(DOCUMENT_PROCESSING_FAILED, "The PDF is encrypted; upload it without a password")
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except ProcessingError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        # pypdf raises its own errors for a broken file, and plain ones from deep in a malformed one.
        log.info("PDF could not be read: %s", exc)
        raise ProcessingError(DOCUMENT_PROCESSING_FAILED, f"The PDF could not be read: {exc}") from None
