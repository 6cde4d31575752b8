"""Risk control: rules as data, blacklists, a decision stored for every payment attempt and
a review queue for staff (docs/risk.md)."""
