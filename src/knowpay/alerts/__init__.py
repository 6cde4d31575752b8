"""Alerts for staff: rejected notifications, failing webhook endpoints, broken gateways."""
