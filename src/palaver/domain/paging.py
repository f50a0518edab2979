"""Paging as Tavus clients page: numbered from 0 or from 1 depending on the resource.

Reference 1.4: conversations, personas, replicas, objectives, guardrails and
tools count pages from 1; documents, dictionaries and videos from 0. Clients do
not always agree with the server (the SDK's CLI asks `/pals` for `page=0`), so
a page number below a resource's first page is its first page, never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

MAX_LIMIT = 1000


def offset_of(page: int, limit: int, first_page: int) -> int:
    return max(page - first_page, 0) * limit


def page_of(items: Sequence[T], page: int, limit: int, first_page: int) -> list[T]:
    start = offset_of(page, limit, first_page)
    return list(items[start : start + limit])
