"""Operators that fetch their credential from CyberArk inside ``execute`` and leave no trace of it."""
