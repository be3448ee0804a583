"""Fixtures shared by every test suite: real PostgreSQL, NATS and S3 servers, a time-stamping
authority made with openssl, and the stack."""

pytest_plugins = [
    "tests.support.postgres",
    "tests.support.nats",
    "tests.support.s3",
    "tests.support.stack",
    "tests.support.tsa",
]
