"""/v2/documents over HTTP: create, processing to ready or error, lists, patch, delete, recrawl, tags, chunks.

A server started with --allow-private-callbacks fetches from a local origin (tests/document_origin.py);
the session's main server, without the flag, must refuse the same 127.0.0.1 URLs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from document_origin import Origin, serve_origin

NOT_FOUND = {"message": "Document not found"}
FIELDS = ["document_id", "document_name", "document_url", "status", "progress", "error_message", "error_details",
          "created_at", "updated_at", "callback_url", "tags", "crawl_config", "crawled_urls", "last_crawled_at",
          "crawl_count"]  # fmt: skip


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with serve_origin() as served:
        yield served


@pytest.fixture(scope="module")
def doc_server(server_factory):
    return server_factory(name="documents", extra_args=("--allow-private-callbacks",))


@pytest.fixture
def dc(doc_server) -> Iterator[httpx.Client]:
    """A client of a fresh account on the documents server (lists start empty)."""
    with doc_server.client(doc_server.new_account_key()) as c:
        yield c


def create(c: httpx.Client, url: str, **extra: Any) -> dict[str, Any]:
    r = c.post("/v2/documents", json={"document_url": url, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def wait_done(c: httpx.Client, document_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = c.get(f"/v2/documents/{document_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("ready", "error"):
            return r.json()
        assert time.monotonic() < deadline, f"still {r.json()['status']} after {timeout} s"
        time.sleep(0.05)


def chunks_of(c: httpx.Client, document_id: str, **params: Any) -> dict[str, Any]:
    r = c.get(f"/v2/documents/{document_id}/chunks", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def test_create_answers_the_document_object_started(dc, origin) -> None:
    got = create(dc, f"{origin.url}/notes.txt", document_name="Notes", tags=["a"], callback_url="https://h.example/x",
                 is_customer_support_document=False, font_size_aware_extraction=False)  # fmt: skip
    assert re.fullmatch(r"d[0-9a-f]{12}", got["document_id"])
    assert list(got)[: len(FIELDS)] == FIELDS
    assert got["status"] == "started" and got["document_name"] == "Notes" and got["tags"] == ["a"]
    assert got["callback_url"] == "https://h.example/x" and got["crawl_config"] is None
    assert got["created_at"].endswith("Z")
    r = dc.post("/v2/documents/", json={"document_url": f"{origin.url}/guide.md"})  # the SDK's slash
    assert r.status_code == 200 and r.json()["document_name"] == "guide.md"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "Invalid request: document_url is required"),
        ({"document_name": "x"}, "Invalid request: document_url is required"),
        ({"document_url": "ftp://example.com/a.txt"}, "Invalid request: document_url must be an http(s) URL"),
    ],
)
def test_create_refusals(dc, body, error) -> None:
    r = dc.post("/v2/documents", json=body)
    assert (r.status_code, r.json()) == (400, {"error": error})


def test_crawl_settings_are_checked(dc) -> None:
    r = dc.post("/v2/documents", json={"document_url": "https://x.example/", "crawl": {"depth": 11, "max_pages": 5}})
    assert r.status_code == 400 and "crawl.depth" in r.json()["error"]


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/notes.txt", "swordfish"),
        ("/guide.md", "blue** button"),
        ("/table.csv", "rocket skates,250"),
        ("/site/", "Acme sells anvils."),
        ("/handbook.pdf", "volcanic eruptions"),
        ("/download", "zeppelins"),
    ],
)
def test_each_format_becomes_ready_with_its_text_in_chunks(dc, origin, path, needle) -> None:
    did = create(dc, origin.url + path)["document_id"]
    done = wait_done(dc, did)
    assert (done["status"], done["error_message"], done["progress"]) == ("ready", None, None), done
    got = chunks_of(dc, did)
    assert got["total_count"] >= 1
    row = got["chunks"][0]
    assert row["chunk_id"] == f"{did}-0" and row["index"] == 0 and row["content"] == row["text"]
    assert needle in row["content"]


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/nope.txt", "invalid_file_url"),
        ("/empty.txt", "file_empty"),
        ("/big.txt", "file_size_too_large"),
        ("/photo.png", "file_format_unsupported"),
        ("/slides.pptx", "file_format_unsupported"),
        ("/broken.pdf", "document_processing_failed"),
    ],
)
def test_bad_inputs_end_in_error_with_their_code(dc, origin, path, code) -> None:
    did = create(dc, origin.url + path)["document_id"]
    done = wait_done(dc, did)
    assert (done["status"], done["error_message"]) == ("error", code), done
    assert done["error_details"]
    assert chunks_of(dc, did) == {"chunks": [], "total_count": 0, "limit": 100, "offset": 0}


def test_the_main_server_refuses_private_addresses(client, origin) -> None:
    did = create(client, f"{origin.url}/notes.txt")["document_id"]
    done = wait_done(client, did)
    assert (done["status"], done["error_message"]) == ("error", "invalid_file_url")
    assert "non-public" in done["error_details"]
    client.delete(f"/v2/documents/{did}")


def test_crawl_and_recrawl(dc, origin) -> None:
    created = create(dc, f"{origin.url}/site/", crawl={"depth": 1, "max_pages": 10})
    assert created["crawl_config"] == {"depth": 1, "max_pages": 10} and created["crawl_count"] == 0
    did = created["document_id"]
    done = wait_done(dc, did)
    assert done["status"] == "ready" and done["crawl_count"] == 1 and done["last_crawled_at"]
    assert done["crawled_urls"] == [f"{origin.url}/site/", f"{origin.url}/site/a", f"{origin.url}/site/b"]
    text = " ".join(row["content"] for row in chunks_of(dc, did)["chunks"])
    assert "refund policy" in text and "opening hours" in text and "shipping rates" not in text
    r = dc.post(f"/v2/documents/{did}/recrawl", json={})
    assert r.status_code == 429
    assert re.fullmatch(r"Recrawl cooldown: please wait (60|59) minutes before recrawling this document\.",
                        r.json()["error"])  # fmt: skip


def test_recrawl_refusals(dc, origin) -> None:
    did = create(dc, f"{origin.url}/notes.txt")["document_id"]
    r = dc.post(f"/v2/documents/{did}/recrawl")
    assert r.status_code in (400, 409)  # 409 while it is still processing, else 400 below
    wait_done(dc, did)
    r = dc.post(f"/v2/documents/{did}/recrawl", json={})
    assert (r.status_code, r.json()) == (400, {"error": "Document was not created with crawl configuration"})
    busy = create(dc, f"{origin.url}/site/", crawl={"depth": 1, "max_pages": 1})["document_id"]
    r = dc.post(f"/v2/documents/{busy}/recrawl", json={})
    if r.status_code == 409:  # it may already be done on a fast machine
        assert re.fullmatch(r"Document must be in 'ready' or 'error' state to recrawl, current status: "
                            r"(started|processing)", r.json()["error"])  # fmt: skip
    else:
        assert r.status_code == 429
    r = dc.post("/v2/documents/d000000000000/recrawl", json={})
    assert (r.status_code, r.json()) == (404, NOT_FOUND)


def test_a_recrawl_with_its_own_crawl_settings_runs_and_answers_202(dc, origin) -> None:
    did = create(dc, f"{origin.url}/guide.md")["document_id"]
    wait_done(dc, did)
    r = dc.post(f"/v2/documents/{did}/recrawl", json={"crawl": {"depth": 1, "max_pages": 1}})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "recrawling" and r.json()["crawl_config"] == {"depth": 1, "max_pages": 1}
    done = wait_done(dc, did)
    assert done["status"] == "ready" and done["crawl_count"] == 1 and done["crawled_urls"] == [f"{origin.url}/guide.md"]
    assert done["crawl_config"] is None  # for that run only


def test_list_paging_sorting_filters(dc, origin) -> None:
    ids = [create(dc, f"{origin.url}/notes.txt", document_name=f"Doc {i}", tags=[f"t{i % 2}"])["document_id"]
           for i in range(3)]  # fmt: skip
    bad = create(dc, f"{origin.url}/nope.txt", document_name="Broken")["document_id"]
    for did in [*ids, bad]:
        wait_done(dc, did)
    r = dc.get("/v2/documents")
    body = r.json()
    assert (body["total_count"], body["page"], body["limit"]) == (4, 0, 10)
    assert [d["document_id"] for d in body["data"]] == [*ids, bad]  # ascending by default (the spec)
    assert [d["document_id"] for d in dc.get("/v2/documents", params={"sort": "desc"}).json()["data"]] == [
        bad, *reversed(ids)]  # fmt: skip
    page1 = dc.get("/v2/documents", params={"page": 1, "limit": 3}).json()
    assert [d["document_id"] for d in page1["data"]] == [bad] and page1["page"] == 1 and page1["total_count"] == 4
    assert dc.get("/v2/documents/", params={"status": "error"}).json()["data"][0]["document_id"] == bad
    assert dc.get("/v2/documents", params={"name_or_uuid": "doc 1"}).json()["data"][0]["document_id"] == ids[1]
    assert dc.get("/v2/documents", params={"name_or_uuid": ids[2]}).json()["total_count"] == 1
    assert dc.get("/v2/documents", params={"tags": "t1"}).json()["total_count"] == 1
    assert dc.get("/v2/documents", params={"tags": "t0,t1", "verbose": "true", "scope": "all"}).json()[
        "total_count"] == 3  # fmt: skip
    for limit in ("0", "-1", "ten", "1.5"):
        r = dc.get("/v2/documents", params={"limit": limit})
        assert (r.status_code, r.json()) == (400, {"error": "Invalid request: limit must be a positive integer"})
    assert dc.get("/v2/documents", params={"page": "-1"}).status_code == 400
    assert dc.get("/v2/documents", params={"sort": "sideways"}).status_code == 400


def test_patch_name_and_tags(dc, origin) -> None:
    did = create(dc, f"{origin.url}/notes.txt", tags=["old"])["document_id"]
    r = dc.patch(f"/v2/documents/{did}", json={"document_name": "Renamed", "tags": ["new", "two"]})
    assert r.status_code == 200 and r.json()["document_name"] == "Renamed" and r.json()["tags"] == ["new", "two"]
    assert dc.get(f"/v2/documents/{did}").json()["tags"] == ["new", "two"]
    r = dc.patch(f"/v2/documents/{did}", json={"status": "ready"})
    assert (r.status_code, r.json()) == (400, {"error": "Invalid request: status cannot be updated "
                                                        "(only document_name and tags)"})  # fmt: skip
    r = dc.patch(f"/v2/documents/{did}", json=[{"op": "replace", "path": "/document_name", "value": "x"}])
    assert r.status_code == 400
    assert dc.get("/v2/documents/tags").json() == {"tags": ["new", "two"], "total_count": 2}
    assert dc.get("/v2/documents/tags", params={"search": "NE"}).json() == {"tags": ["new"], "total_count": 1}
    assert dc.get("/v2/documents/tags", params={"limit": 1, "page": 1}).json() == {"tags": ["two"], "total_count": 2}
    wait_done(dc, did)  # the job's own changes keep the patched name
    assert dc.get(f"/v2/documents/{did}").json()["document_name"] == "Renamed"


def test_delete_removes_chunks_and_detaches_from_pals(dc, origin) -> None:
    did = create(dc, f"{origin.url}/notes.txt")["document_id"]
    wait_done(dc, did)
    pal = dc.post("/v2/pals", json={"pal_name": "K", "system_prompt": "Help.", "default_face_id": "r90bbd427f71",
                                    "document_ids": [did]})  # fmt: skip
    assert pal.status_code == 200, pal.text
    pal_id = pal.json()["pal_id"]
    r = dc.delete(f"/v2/documents/{did}")
    assert r.status_code == 204 and r.content == b""
    for method, path in [("GET", did), ("DELETE", did), ("PATCH", did), ("GET", f"{did}/chunks"),
                         ("POST", f"{did}/recrawl")]:  # fmt: skip
        r = dc.request(method, f"/v2/documents/{path}", json={} if method in ("PATCH", "POST") else None)
        assert (r.status_code, r.json()) == (404, NOT_FOUND), (method, path)
    assert dc.get(f"/v2/pals/{pal_id}").json()["document_ids"] == []


def test_unknown_malformed_and_foreign_ids_are_exactly_404(dc, client, origin) -> None:
    did = create(dc, f"{origin.url}/notes.txt")["document_id"]
    for c, document_id in [(dc, "d000000000000"), (dc, "bad%20id!"), (client, did)]:
        for method, suffix in [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/recrawl"), ("GET", "/chunks")]:
            r = c.request(method, f"/v2/documents/{document_id}{suffix}",
                          json={} if method in ("PATCH", "POST") else None)  # fmt: skip
            assert (r.status_code, r.json()) == (404, NOT_FOUND), (method, document_id, suffix)
    assert did not in [d["document_id"] for d in client.get("/v2/documents", params={"limit": 1000}).json()["data"]]


def test_chunks_paging(dc, origin) -> None:
    did = create(dc, f"{origin.url}/site/", crawl={"depth": 2, "max_pages": 4})["document_id"]
    wait_done(dc, did)
    everything = chunks_of(dc, did, collection="regular")
    total = everything["total_count"]
    assert total >= 1 and len(everything["chunks"]) == total
    page = chunks_of(dc, did, limit=1, offset=total - 1)
    assert [row["index"] for row in page["chunks"]] == [total - 1]
    r = dc.get(f"/v2/documents/{did}/chunks", params={"limit": 0})
    assert (r.status_code, r.json()) == (400, {"error": "Invalid request: limit must be a positive integer"})


def test_status_callbacks_arrive(doc_server, dc, origin, receiver) -> None:
    did = create(dc, f"{origin.url}/notes.txt", callback_url=receiver.url("/docs"))["document_id"]
    got = receiver.wait_for("/docs", 3, timeout=30)
    assert [r.json["status"] for r in got] == ["started", "processing", "ready"]
    assert all(r.json["document_id"] == did for r in got)
    assert [r.headers["webhook-id"] for r in got] == [f"{did}-1.document.{s}" for s in ("started", "processing",
                                                                                         "ready")]  # fmt: skip
