"""Every table of knowpay, imported in one place so that Alembic sees the whole schema."""

from __future__ import annotations

from knowpay.accounts import models as accounts_models
from knowpay.catalog import models as catalog_models
from knowpay.kit.db import Base

metadata = Base.metadata

__all__ = ["accounts_models", "catalog_models", "metadata"]
