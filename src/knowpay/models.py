"""Every table of knowpay, imported in one place so that Alembic sees the whole schema."""

from __future__ import annotations

from knowpay.accounts import models as accounts_models
from knowpay.alerts import models as alerts_models
from knowpay.audit import models as audit_models
from knowpay.catalog import models as catalog_models
from knowpay.credentials import models as credentials_models
from knowpay.entitlements import models as entitlements_models
from knowpay.gateway_notifications import models as notifications_models
from knowpay.kit import idempotency_models, outbox_models
from knowpay.kit.db import Base
from knowpay.ledger import models as ledger_models
from knowpay.limits import models as limits_models
from knowpay.orders import models as orders_models
from knowpay.payments import models as payments_models
from knowpay.reconciliation import models as reconciliation_models
from knowpay.refunds import models as refunds_models
from knowpay.reports import models as reports_models
from knowpay.risk import models as risk_models
from knowpay.settlements import models as settlements_models
from knowpay.subscriptions import models as subscriptions_models
from knowpay.wallet import models as wallet_models
from knowpay.webhooks import models as webhooks_models

metadata = Base.metadata

__all__ = [
    "accounts_models",
    "alerts_models",
    "audit_models",
    "catalog_models",
    "credentials_models",
    "entitlements_models",
    "idempotency_models",
    "ledger_models",
    "limits_models",
    "metadata",
    "notifications_models",
    "orders_models",
    "outbox_models",
    "payments_models",
    "reconciliation_models",
    "refunds_models",
    "reports_models",
    "risk_models",
    "settlements_models",
    "subscriptions_models",
    "wallet_models",
    "webhooks_models",
]
