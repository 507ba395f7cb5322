"""Load with Locust: plan, signed Blob requests, the locustfile, histograms and KPIs.

Nothing in this package imports Locust except ``locustfile.py``, which only Locust's own
processes load (see ``process.py``).
"""
