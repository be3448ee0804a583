"""Fixtures shared by every test suite: real PostgreSQL, NATS and S3 servers, and the stack."""

pytest_plugins = [
    "tests.support.postgres",
    "tests.support.nats",
    "tests.support.s3",
    "tests.support.stack",
]
