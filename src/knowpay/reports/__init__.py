"""Reports for staff: exchange rates and revenue in a base currency."""
