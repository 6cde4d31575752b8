"""Buyers, creators, staff, platform apps and their API keys, and payment passwords."""
