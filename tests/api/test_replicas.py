"""/v2/replicas and /v2/faces: the stock faces, filters, verbose, and what stock ones refuse."""

from __future__ import annotations

import pytest


def test_stock_replicas_are_system_faces(client) -> None:
    r = client.get("/v2/replicas", params={"replica_type": "system", "limit": 100, "verbose": "true"})
    assert r.status_code == 200
    body = r.json()
    ids = [x["replica_id"] for x in body["data"]]
    assert "r90bbd427f71" in ids and "rfe12d8b9597" in ids and body["total_count"] == len(ids)
    for replica in body["data"]:
        assert replica["replica_type"] == "system" and replica["status"] == "completed"
        assert replica["training_progress"] == "100/100"
        assert set(replica) >= {"replica_name", "thumbnail_video_url", "created_at", "updated_at", "model_name"}


def test_faces_vocabulary(client) -> None:
    face = client.get("/v2/faces", params={"face_type": "system", "limit": 25}).json()["data"][0]
    assert "face_id" in face and "face_name" in face and "replica_id" not in face
    got = client.get(f"/v2/faces/{face['face_id']}", params={"verbose": "true"}).json()
    assert got["face_type"] == "system" and got["face_id"] == face["face_id"]


def test_replica_type_only_with_verbose(client) -> None:
    assert "replica_type" not in client.get("/v2/replicas/r90bbd427f71").json()
    assert client.get("/v2/replicas/r90bbd427f71", params={"verbose": "true"}).json()["replica_type"] == "system"


def test_filters(client) -> None:
    r = client.get("/v2/replicas", params={"replica_ids": "r90bbd427f71,rfe12d8b9597,rnothere"}).json()
    assert sorted(x["replica_id"] for x in r["data"]) == ["r90bbd427f71", "rfe12d8b9597"] and r["total_count"] == 2
    p4 = client.get("/v2/faces", params={"model_name": "phoenix-4", "limit": 100}).json()
    assert p4["data"] and {x["model_name"] for x in p4["data"]} == {"phoenix-4"}
    assert client.get("/v2/replicas", params={"replica_type": "user"}).json() == {"data": [], "total_count": 0}
    paged = [client.get("/v2/replicas", params={"limit": 5, "page": n}).json()["data"] for n in (1, 2)]
    assert len(paged[0]) == 5 and not {x["replica_id"] for x in paged[0]} & {x["replica_id"] for x in paged[1]}


@pytest.mark.parametrize(("prefix", "field"), [("/v2/replicas", "replica_id"), ("/v2/faces", "face_id")])
def test_unknown_ids_are_400_in_the_vocabulary(client, prefix, field) -> None:
    for method, path in [("GET", "/rmissing00"), ("DELETE", "/rmissing00"), ("GET", "/bad.id")]:
        r = client.request(method, prefix + path)
        assert r.status_code == 400 and r.json() == {"error": f"Invalid {field}"}
    r = client.patch(prefix + "/rmissing00/name", json={field.replace("_id", "_name"): "x"})
    assert r.json() == {"error": f"Invalid {field}"}


def test_stock_replicas_cannot_be_renamed_or_deleted(client) -> None:
    r = client.patch("/v2/replicas/r90bbd427f71/name", json={"replica_name": "Mine now"})
    assert r.status_code == 400 and "cannot be changed" in r.json()["error"]
    assert client.delete("/v2/faces/r90bbd427f71").status_code == 400
    assert client.get("/v2/replicas/r90bbd427f71").json()["replica_name"] == "Anna"


def test_rename_needs_a_name(client) -> None:
    r = client.patch("/v2/replicas/r90bbd427f71/name", json={})
    assert r.status_code == 400 and r.json() == {"error": "replica_name is required"}
