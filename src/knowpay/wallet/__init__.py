"""The knowledge-coin wallet: a buyer's prepaid balance per currency."""
