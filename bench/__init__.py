"""Measurements of Custody against baselines measured in the same run (``make bench``).

``python -m bench`` starts everything it needs (a stack of real service processes in a
temporary folder, its own NATS namespace, fresh PostgreSQL databases, an S3 bucket), measures
ingest, intake, retrieval, the custody ledger and the services' peak memory on the embedded
default and on PostgreSQL + S3, prints one table and writes it into ``docs/benchmarks.md``.
"""
