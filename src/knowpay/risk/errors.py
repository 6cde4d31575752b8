"""Errors of the risk domain, each with a stable code."""

from __future__ import annotations

from knowpay.kit.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable


class RiskRuleNotFound(NotFound):
    code, title = "risk_rule_not_found", "No such risk rule"


class InvalidRuleParams(Unprocessable):
    code, title = "invalid_risk_rule_params", "The rule's params are not valid for its kind"


class BlacklistEntryNotFound(NotFound):
    code, title = "risk_blacklist_entry_not_found", "No such blacklist entry"


class BlacklistEntryExists(Conflict):
    code, title = "risk_blacklist_entry_exists", "This value is already blacklisted"


class RiskDecisionNotFound(NotFound):
    code, title = "risk_decision_not_found", "No such risk decision"


class ReviewNotFound(NotFound):
    code, title = "risk_review_not_found", "No such risk review"


class ReviewAlreadyDecided(Conflict):
    code, title = "risk_review_already_decided", "This review has already been decided"


class ReviewReleaserMissing(ServiceUnavailable):
    code, title = "risk_review_releaser_missing", "Held payments cannot be released right now"
