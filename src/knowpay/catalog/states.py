"""The product lifecycle: the only place a product's status changes are allowed."""

from __future__ import annotations

from enum import StrEnum


class ProductStatus(StrEnum):
    DRAFT = "draft"
    """Being prepared; cannot be sold."""
    PUBLISHED = "published"
    """On sale."""
    ARCHIVED = "archived"
    """No longer sold; existing entitlements stay."""


class ProductKind(StrEnum):
    COURSE = "course"
    COLUMN = "column"
    MEMBERSHIP = "membership"
    EBOOK = "ebook"
    LIVE = "live"


TRANSITIONS: dict[ProductStatus, frozenset[ProductStatus]] = {
    ProductStatus.DRAFT: frozenset({ProductStatus.PUBLISHED, ProductStatus.ARCHIVED}),
    ProductStatus.PUBLISHED: frozenset({ProductStatus.ARCHIVED}),
    ProductStatus.ARCHIVED: frozenset({ProductStatus.PUBLISHED}),
}


def can_transition(current: ProductStatus, target: ProductStatus) -> bool:
    """Whether a product may move from `current` to `target`."""
    return target in TRANSITIONS[current]
