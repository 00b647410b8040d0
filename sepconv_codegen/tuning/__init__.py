"""Tuning: the schedule search, its database, and the records shipped with the package."""
