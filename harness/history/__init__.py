"""Nightly history: KPI rows of every run in one table (DuckDB or PostgreSQL), change points
and A/B verdicts over it, and the trend page."""
