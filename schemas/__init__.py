"""Data files shipped with protodb: the bank's table schemas (bank.json)."""
