"""POST /v2/replicas and /v2/faces over HTTP: training end to end against a live server.

A server started with --allow-private-callbacks downloads footage from a local origin
(tests/training_media.py) and sends the training callback to a local receiver; the
session server (no flag) must refuse a 127.0.0.1 footage URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import training_media

SETTLE_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def origin() -> Iterator[training_media.Origin]:
    o = training_media.start_origin()
    o.files.update({
        "/good.mp4": training_media.video(),
        "/short.mp4": training_media.video(seconds=10),
        "/face.png": training_media.still("png"),
    })  # fmt: skip
    yield o
    o.close()


@pytest.fixture(scope="module")
def training_server(server_factory):
    return server_factory(name="training", extra_args=("--allow-private-callbacks",))


@pytest.fixture
def tclient(training_server) -> Iterator[httpx.Client]:
    with training_server.client(training_server.shown_once_key) as c:
        yield c


def settled(client: httpx.Client, path: str, timeout: float = SETTLE_TIMEOUT) -> dict:
    """Poll GET until the status leaves `started`; returns the document and the seconds it took."""
    start = time.monotonic()
    while True:
        r = client.get(path)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] != "started":
            body["_seconds"] = time.monotonic() - start
            return body
        assert time.monotonic() - start < timeout, f"{path} still training: {body}"
        time.sleep(0.1)


def test_a_video_trains_serves_its_thumbnail_calls_back_and_hard_delete_purges(
    tclient, training_server, origin, receiver
) -> None:
    r = tclient.post("/v2/replicas", json={"train_video_url": origin.url("/good.mp4"), "replica_name": "Rio",
                                           "callback_url": receiver.url("/trained")})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"replica_id", "status"} and body["status"] == "started"
    rid = body["replica_id"]
    assert rid.startswith("r") and len(rid) == 13
    first = tclient.get(f"/v2/replicas/{rid}", params={"verbose": "true"}).json()
    assert first["replica_type"] == "user" and first["model_name"] == "phoenix-4" and first["replica_name"] == "Rio"
    assert not [k for k in first if k.startswith("_")]  # the training request is the server's own
    done = settled(tclient, f"/v2/replicas/{rid}")
    print(f"training took {done['_seconds']:.2f} s")
    assert (done["status"], done["training_progress"], done["error_message"]) == ("completed", "100/100", None)
    thumb = done["thumbnail_video_url"]
    assert thumb.startswith(training_server.base_url + "/media/") and thumb.endswith(".mp4")
    got = httpx.get(thumb)  # no API key
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4" and got.content[4:8] == b"ftyp"
    part = httpx.get(thumb, headers={"range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == got.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(got.content)}"
    (callback,) = receiver.wait_for("/trained", 1, timeout=15)
    assert callback.json == {"replica_id": rid, "status": "ready"}
    assert callback.headers["webhook-id"] == f"{rid}.replica.training"
    # Listed, usable in a conversation, then hard-deleted: the thumbnail goes with it.
    listed = tclient.get("/v2/replicas", params={"replica_type": "user"}).json()
    assert [x["replica_id"] for x in listed["data"]] == [rid]
    conversation = tclient.post("/v2/conversations", json={"replica_id": rid, "test_mode": True})
    assert conversation.status_code == 200, conversation.text
    assert tclient.delete(f"/v2/replicas/{rid}", params={"hard": "true"}).status_code == 200
    assert httpx.get(thumb).status_code == 404
    assert tclient.get(f"/v2/replicas/{rid}").json() == {"error": "Invalid replica_id"}


def test_a_face_from_an_image(tclient, origin) -> None:
    r = tclient.post("/v2/faces", json={"train_image_url": origin.url("/face.png"), "voice_name": "Anna",
                                        "face_name": "Still"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"face_id", "status"}
    fid = r.json()["face_id"]
    done = settled(tclient, f"/v2/faces/{fid}")
    assert done["status"] == "completed" and done["face_name"] == "Still" and "replica_id" not in done
    got = httpx.get(done["thumbnail_video_url"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg" and got.content[:2] == b"\xff\xd8"
    assert tclient.get(f"/v2/replicas/{fid}").json()["replica_name"] == "Still"  # one object, two vocabularies


def test_a_rule_broken_ends_in_error_with_its_type_and_an_error_callback(tclient, origin, receiver) -> None:
    r = tclient.post("/v2/replicas", json={"train_video_url": origin.url("/short.mp4"),
                                           "callback_url": receiver.url("/failed")})  # fmt: skip
    rid = r.json()["replica_id"]
    done = settled(tclient, f"/v2/replicas/{rid}")
    assert (done["status"], done["error_type"]) == ("error", "video_duration")
    assert "at least 1 minute" in done["error_message"] and done["thumbnail_video_url"] is None
    (callback,) = receiver.wait_for("/failed", 1, timeout=15)
    assert callback.json == {"replica_id": rid, "status": "error", "error_message": done["error_message"]}
    refused = tclient.post("/v2/conversations", json={"replica_id": rid})
    assert refused.status_code == 400


def test_the_default_server_refuses_a_private_footage_url(client, origin) -> None:
    """Without --allow-private-callbacks, a 127.0.0.1 URL is never fetched: download_link."""
    before = len(origin.gets)
    rid = client.post("/v2/replicas", json={"train_video_url": origin.url("/good.mp4")}).json()["replica_id"]
    done = settled(client, f"/v2/replicas/{rid}")
    assert (done["status"], done["error_type"]) == ("error", "download_link")
    assert "train_video_url" in done["error_message"] and len(origin.gets) == before
    assert client.delete(f"/v2/replicas/{rid}").status_code == 200


@pytest.mark.parametrize("prefix", ["/v2/replicas", "/v2/faces"])
@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "Either train_video_url or train_image_url must be provided."),
        ({"replica_name": "x"}, "Either train_video_url or train_image_url must be provided."),
        ({"train_video_url": "https://a.example/v.mp4", "train_image_url": "https://a.example/i.png",
          "voice_name": "anna"}, "Provide either train_video_url or train_image_url, not both."),
        ({"train_image_url": "https://a.example/i.png"}, "voice_name is required with train_image_url"),
        ({"train_image_url": "https://a.example/i.png", "voice_name": "zork"},
         "Invalid voice_name 'zork': use a voice from GET /v2/voices, such as 'anna'"),
        ({"train_video_url": "ftp://a.example/v.mp4"}, "train_video_url must be a well-formed http(s) URL"),
        ({"train_video_url": "https://a.example/v.mp4", "model_name": "phoenix-2"},
         "model_name must be one of: phoenix-4, phoenix-3"),
        ({"train_video_url": "https://a.example/v.mp4", "callback_url": "nope"},
         "callback_url must be a well-formed http(s) URL"),
    ],
)  # fmt: skip
def test_create_refusals(client, prefix, body, error) -> None:
    if prefix == "/v2/faces" and "replica_name" in body:
        body = {"face_name": body["replica_name"]}
    r = client.post(prefix, json=body)
    assert r.status_code == 400 and r.json() == {"error": error}


def test_bad_bodies_and_no_key(client, make_client) -> None:
    for raw in (b"[1]", b"{nope", b'"x"'):
        r = client.post("/v2/replicas", content=raw)
        assert r.status_code == 400 and "error" in r.json()
    r = client.post("/v2/faces", json={"train_video_url": "https://a.example/v.mp4", "replica_name": "x"})
    assert r.status_code == 400 and "face_name" in r.json()["error"]
    r = make_client().post("/v2/replicas", json={"train_video_url": "https://a.example/v.mp4"})
    assert r.status_code == 401 and r.json() == {"message": "Invalid access token"}


def test_media_urls_that_name_nothing_are_404(server) -> None:
    for name in ("nothing.mp4", "A" * 22 + ".mp4", "../etc.mp4", "x" * 300):
        r = httpx.get(f"{server.base_url}/media/{name}")
        assert r.status_code == 404


def test_another_account_cannot_see_or_touch_a_trained_replica(tclient, training_server, origin) -> None:
    rid = tclient.post("/v2/replicas", json={"train_video_url": origin.url("/good.mp4")}).json()["replica_id"]
    assert settled(tclient, f"/v2/replicas/{rid}")["status"] == "completed"
    with training_server.client(training_server.new_account_key()) as other:
        unknown = other.get("/v2/replicas/rffffffffff0").json()
        assert other.get(f"/v2/replicas/{rid}").json() == unknown == {"error": "Invalid replica_id"}
        assert other.get(f"/v2/faces/{rid}").json() == {"error": "Invalid face_id"}
        assert rid not in {x["replica_id"] for x in other.get("/v2/replicas", params={"limit": 100}).json()["data"]}
        assert other.patch(f"/v2/replicas/{rid}/name", json={"replica_name": "Mine"}).json() == unknown
        assert other.delete(f"/v2/replicas/{rid}", params={"hard": "true"}).json() == unknown
        foreign = other.post("/v2/conversations", json={"replica_id": rid})
        missing = other.post("/v2/conversations", json={"replica_id": "rffffffffff0"})
        assert foreign.status_code == missing.status_code == 400
        assert foreign.json() == missing.json()
        pal = other.post("/v2/pals", json={"pal_name": "x", "system_prompt": "x", "default_face_id": rid})
        pal_missing = other.post("/v2/pals", json={"pal_name": "x", "system_prompt": "x",
                                                   "default_face_id": "rffffffffff0"})  # fmt: skip
        assert pal.status_code == pal_missing.status_code == 400
        assert pal.json()["error"] == pal_missing.json()["error"].replace("rffffffffff0", rid)
    owned = tclient.get(f"/v2/replicas/{rid}").json()
    assert owned["status"] == "completed" and owned["replica_name"] != "Mine"
    assert httpx.get(owned["thumbnail_video_url"]).status_code == 200  # not purged by the other account
    pal = tclient.post("/v2/pals", json={"pal_name": "x", "system_prompt": "x", "default_face_id": rid})
    assert pal.status_code == 200, pal.text
