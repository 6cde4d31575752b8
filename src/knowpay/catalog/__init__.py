"""Products of the platform and their prices per currency."""
