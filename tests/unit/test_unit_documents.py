"""Documents without a server: create rules, chunking, format detection and text extraction, cooldowns."""

from __future__ import annotations

import pytest
from document_origin import FILES, PDF_LINES, make_pdf

from palaver.domain import documents as doc
from palaver.domain.errors import ValidationFailed
from palaver.service.document_extraction import ProcessingError, detect_format, extract, html_page, pdf_text

# creating -------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"document_url": ""}, {"document_url": "   "}, {"document_url": None}])
def test_document_url_is_required(body) -> None:
    with pytest.raises(ValidationFailed) as exc:
        doc.parse_create(body)
    assert exc.value.message == "Invalid request: document_url is required"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"document_url": "ftp://example.com/a.pdf"}, "document_url must be an http(s) URL"),
        ({"document_url": "file:///etc/passwd"}, "document_url must be an http(s) URL"),
        ({"document_url": "https://"}, "document_url must be an http(s) URL"),
        ({"document_url": 42}, "document_url"),
        ({"document_url": "https://x.example", "crawl": {"depth": 0, "max_pages": 5}}, "crawl.depth"),
        ({"document_url": "https://x.example", "crawl": {"depth": 11, "max_pages": 5}}, "crawl.depth"),
        ({"document_url": "https://x.example", "crawl": {"depth": 2, "max_pages": 101}}, "crawl.max_pages"),
        ({"document_url": "https://x.example", "crawl": {"depth": 2, "pages": 3}}, "crawl.pages"),
        ({"document_url": "https://x.example", "tags": "a,b"}, "tags"),
        ({"document_url": "https://x.example", "tags": ["a,b"]}, "without commas"),
        ({"document_url": "https://x.example", "tags": [""]}, "tags must be non-empty"),
        ({"document_url": "https://x.example", "callback_url": "javascript:alert(1)"}, "callback_url"),
        ({"document_url": "https://x.example", "is_customer_support_document": "yes"}, "is_customer_support_document"),
    ],
)
def test_create_rules(body, text) -> None:
    with pytest.raises(ValidationFailed) as exc:
        doc.parse_create(body)
    assert exc.value.message.startswith("Invalid request: ") and text in exc.value.message


def test_new_document_is_complete_and_started() -> None:
    request = doc.parse_create({"document_url": "https://docs.example.com/guide/intro.pdf", "tags": ["a", "a", "b"],
                                "crawl": {"depth": 2, "max_pages": 20}, "unknown_field": 1})  # fmt: skip
    body = doc.new_document("d0123456789ab", request)
    shown = doc.shown(body)
    assert list(shown)[:15] == ["document_id", "document_name", "document_url", "status", "progress", "error_message",
                                "error_details", "created_at", "updated_at", "callback_url", "tags", "crawl_config",
                                "crawled_urls", "last_crawled_at", "crawl_count"]  # fmt: skip
    assert shown["status"] == "started" and shown["progress"] is None and shown["tags"] == ["a", "b"]
    assert shown["document_name"] == "intro.pdf" and shown["callback_url"] == ""
    assert shown["crawl_config"] == {"depth": 2, "max_pages": 20} and shown["crawl_count"] == 0
    assert not any(key.startswith("_") for key in shown) and body["_run"] == 1
    plain = doc.new_document("d1", doc.parse_create({"document_url": "https://docs.example.com/"}))
    assert plain["document_name"] == "docs.example.com" and plain["crawl_config"] is None
    assert plain["crawl_count"] is None and plain["crawled_urls"] is None


def test_patch_takes_name_and_tags_only() -> None:
    assert doc.parse_patch({"document_name": "New", "tags": ["x"]}).tags == ["x"]
    with pytest.raises(ValidationFailed, match="status cannot be updated"):
        doc.parse_patch({"status": "ready"})
    with pytest.raises(ValidationFailed, match="document_name"):
        doc.parse_patch({"document_name": ""})


def test_ids_and_cooldown() -> None:
    assert doc.new_document_id().startswith("d") and len(doc.new_document_id()) == 13
    assert doc.cooldown_minutes(None, 5000.0) == 0
    assert doc.cooldown_minutes(1000.0, 1000.0) == 60
    assert doc.cooldown_minutes(1000.0, 1000.0 + 15 * 60) == 45
    assert doc.cooldown_minutes(1000.0, 1000.0 + 3599) == 1
    assert doc.cooldown_minutes(1000.0, 1000.0 + 3600) == 0
    assert doc.cooldown_text(45) == "Recrawl cooldown: please wait 45 minutes before recrawling this document."
    assert doc.cooldown_text(1).endswith("wait 1 minute before recrawling this document.")


# chunking -------------------------------------------------------------------------------------


def test_short_text_is_one_chunk() -> None:
    assert doc.chunk_text("Hello   world.\n\n\n\nSecond    paragraph.") == ["Hello world.\n\nSecond paragraph."]
    assert doc.chunk_text("   \n\n ") == []


def test_chunks_are_bounded_split_on_boundaries_and_overlap() -> None:
    paragraphs = [" ".join(f"Paragraph {p} sentence {s} says something useful." for s in range(6)) for p in range(30)]
    text = "\n\n".join(paragraphs)
    chunks = doc.chunk_text(text)
    assert len(chunks) > 5
    assert all(len(c) <= doc.CHUNK_SIZE for c in chunks)
    assert all(c.endswith(".") for c in chunks)  # cut at sentence or paragraph ends, never mid-sentence
    for previous, current in zip(chunks, chunks[1:], strict=False):
        head = current.split(".")[0]
        assert head in previous  # the overlap: the next chunk starts with the tail of this one
    # Nothing is lost: every sentence is in some chunk.
    for p in range(30):
        for s in range(6):
            assert any(f"Paragraph {p} sentence {s} says" in c for c in chunks)


def test_a_paragraph_without_boundaries_is_cut_at_spaces_then_hard() -> None:
    words = doc.chunk_text(" ".join(["word"] * 600))  # 2,999 characters, no sentence end
    assert all(len(c) <= doc.CHUNK_SIZE and not c.startswith(" ") for c in words) and len(words) >= 3
    solid = doc.chunk_text("x" * 2500)
    assert [len(c) for c in solid] == [1000, 1000, 500]


# extraction -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "media_type", "expected"),
    [
        ("https://x/a", "text/plain", "text"),
        ("https://x/a.md", "text/markdown", "markdown"),
        ("https://x/a.md", "text/x-unknown", "markdown"),
        ("https://x/a.csv", "application/octet-stream", "csv"),
        ("https://x/", "text/html", "html"),
        ("https://x/doc", "application/pdf", "pdf"),
        ("https://x/doc.pdf", "", "pdf"),
        ("https://x/download", "application/octet-stream", "pdf"),  # sniffed: %PDF-
    ],
)
def test_detect_format(url, media_type, expected) -> None:
    content = make_pdf(["x"]) if url.endswith("download") else b"text"
    assert detect_format(url, media_type, content) == expected


@pytest.mark.parametrize(
    ("url", "media_type", "words"),
    [
        ("https://x/photo.png", "image/png", "image"),
        ("https://x/photo", "image/jpeg", "image"),
        ("https://x/slides.pptx", "application/octet-stream", "PowerPoint"),
        ("https://x/report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "Word"),
        ("https://x/sheet.xlsx", "application/octet-stream", "Excel"),
        ("https://x/blob", "application/zip", "application/zip"),
    ],
)
def test_unsupported_formats_say_so(url, media_type, words) -> None:
    with pytest.raises(ProcessingError) as exc:
        detect_format(url, media_type, b"PK\x03\x04")
    assert exc.value.code == "file_format_unsupported" and words in exc.value.details


def test_html_text_and_links() -> None:
    page = html_page("http://origin.test/site/", FILES["/site/"][1])
    assert "Welcome to Acme" in page.text and "Acme sells anvils." in page.text and "Acme home" in page.text
    assert "scriptword" not in page.text and "menu" not in page.text
    assert page.links == ["http://origin.test/site/a", "http://origin.test/site/b", "http://origin.test/site/a",
                          "https://elsewhere.example/x"]  # fmt: skip


def test_pdf_text_and_broken_pdf() -> None:
    assert pdf_text(make_pdf(PDF_LINES)).splitlines() == PDF_LINES
    with pytest.raises(ProcessingError) as exc:
        pdf_text(b"%PDF-1.4\nnot a pdf at all")
    assert exc.value.code == "document_processing_failed"


def test_text_decoding() -> None:
    assert extract("https://x/a.txt", "text/plain", "\ufeffcafé".encode()).text == "café"
    assert extract("https://x/a.txt", "text/plain", "café".encode("cp1252")).text == "café"
    assert extract("https://x/t.csv", "text/csv", FILES["/table.csv"][1]).text.startswith("product,price")
