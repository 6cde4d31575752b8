"""Memberships renewed automatically from the buyer's wallet, with dunning."""
