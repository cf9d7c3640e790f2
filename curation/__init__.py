"""Plain Python on media: probe, decode, split, score, dedup, balance, filter, dashboards.

Testable without Ray; imports only schemas/ from this project.
"""
