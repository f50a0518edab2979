"""Conversations with `memory_stores` start those stores with their PAL's seed memories (reference 11)."""

from __future__ import annotations


def test_a_conversations_stores_receive_the_pals_seed_lines_once(new_account, make_client) -> None:
    c = make_client(new_account())
    pal = c.post("/v2/pals", json={"pal_name": "Tutor", "system_prompt": "Teach.", "default_face_id": "r90bbd427f71",
                                   "memories": ["likes fractions", "prefers short answers"]}).json()  # fmt: skip
    for _ in range(2):  # the second conversation must not write the same lines again
        r = c.post("/v2/conversations", json={"pal_id": pal["pal_id"], "memory_stores": ["anna_p1", "class-2"],
                                              "test_mode": True})  # fmt: skip
        assert r.status_code == 200, r.text
    assert c.get("/v2/memory-stores").json()["total_count"] == 2
    store = c.get("/v2/memory-stores/anna_p1").json()
    assert [m["content"] for m in store["memories"]] == ["likes fractions", "prefers short answers"]


def test_without_memory_stores_nothing_is_written(new_account, make_client) -> None:
    c = make_client(new_account())
    pal = c.post("/v2/pals", json={"pal_name": "T", "system_prompt": "x", "default_face_id": "r90bbd427f71",
                                   "memories": ["a"]}).json()  # fmt: skip
    assert c.post("/v2/conversations", json={"pal_id": pal["pal_id"], "test_mode": True}).status_code == 200
    assert c.get("/v2/memory-stores").json() == {"data": [], "total_count": 0}
