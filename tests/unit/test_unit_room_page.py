"""The room page's server-rendered parts (api/rooms.py), and the drop-in's docs kept in step with the served example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from palaver.api.rooms import _avatar, initials

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "letters"),
    [("Anna", "A"), ("Lucas - Studio", "LS"), ("Stock replica (Phoenix-4 Pro)", "SR"), ("", "?"), ("ñandú rojo", "ÑR")],
)
def test_initials(name, letters):
    assert initials(name) == letters


def test_avatar_is_the_thumbnail_clip_picture_or_initials():
    clip = _avatar("Anna", "r1", "http://127.0.0.1:8000/media/abc.mp4")
    assert clip.startswith("<video") and 'src="http://127.0.0.1:8000/media/abc.mp4"' in clip and "muted" in clip
    picture = _avatar("Anna", "r1", "https://cdn.example/a.JPG?x=1&y=2")
    assert picture.startswith("<img") and 'src="https://cdn.example/a.JPG?x=1&amp;y=2"' in picture
    for thumbnail in (None, "", "javascript:alert(1)", "data:text/html,<script>", 42):
        circle = _avatar("Anna", "r1", thumbnail)
        assert circle.startswith('<div class="avatar initials c') and ">A</div>" in circle
    quoted = _avatar('"><script>x</script>', "r1", 'https://x/"onerror="a.mp4')
    assert "<script>" not in quoted and '"onerror="' not in quoted


def test_avatar_colour_is_stable_per_replica():
    assert _avatar("Anna", "r90bbd427f71", None) == _avatar("Anna", "r90bbd427f71", None)


def test_docs_show_the_served_example_page_verbatim():
    doc = (ROOT / "docs" / "rooms-javascript.md").read_text(encoding="utf-8")
    served = (ROOT / "src" / "palaver" / "rooms" / "static" / "examples" / "drop-in.html").read_text(encoding="utf-8")
    shown = re.search(r"### The complete example page\n.*?```html\n(.*?)```\n", doc, re.S)
    assert shown is not None, "docs/rooms-javascript.md lost its example page"
    assert shown.group(1) == served, "docs/rooms-javascript.md and static/examples/drop-in.html differ"
