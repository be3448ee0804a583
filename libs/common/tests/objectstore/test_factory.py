"""Which adapter the settings choose."""

from __future__ import annotations

from pathlib import Path

import pytest

from custody_common.errors import ConfigurationError
from custody_common.objectstore import open_object_store
from custody_common.objectstore.local import LocalFolderStore
from custody_common.objectstore.s3 import S3Store
from custody_common.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_the_default_is_a_folder_under_home(tmp_path: Path) -> None:
    store = open_object_store(settings(home=tmp_path))

    assert isinstance(store, LocalFolderStore)
    assert store.root == tmp_path / "objects"


def test_a_path_is_a_local_folder(tmp_path: Path) -> None:
    store = open_object_store(settings(home=tmp_path, object_store=str(tmp_path / "vault")))

    assert isinstance(store, LocalFolderStore)
    assert store.root == tmp_path / "vault"


@pytest.mark.parametrize(
    ("endpoint", "secure", "url"),
    [
        ("http://127.0.0.1:7480", True, "http://127.0.0.1:7480"),
        ("https://s3.example.org", False, "https://s3.example.org"),
        ("127.0.0.1:9000", False, "http://127.0.0.1:9000"),
        ("s3.example.org", True, "https://s3.example.org"),
    ],
)
def test_an_s3_url_opens_that_bucket(tmp_path: Path, endpoint: str, secure: bool, url: str) -> None:
    store = open_object_store(
        settings(
            home=tmp_path,
            object_store="s3://custody-evidence",
            s3_endpoint=endpoint,
            s3_access_key="access",
            s3_secret_key="secret",
            s3_secure=secure,
        )
    )

    assert isinstance(store, S3Store)
    assert store.bucket == "custody-evidence"
    assert store.endpoint_url == url


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"object_store": "s3://"}, "s3://BUCKET"),
        ({"object_store": "s3://bucket/folder"}, "s3://BUCKET"),
        ({"object_store": "s3://bucket", "s3_access_key": "a", "s3_secret_key": "s"}, "CUSTODY_S3_ENDPOINT"),
        ({"object_store": "s3://bucket", "s3_endpoint": "127.0.0.1:7480"}, "CUSTODY_S3_ACCESS_KEY"),
        (
            {"object_store": "s3://bucket", "s3_endpoint": "ftp://x", "s3_access_key": "a", "s3_secret_key": "s"},
            "CUSTODY_S3_ENDPOINT",
        ),
    ],
)
def test_incomplete_s3_settings_say_what_is_missing(tmp_path: Path, values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_object_store(settings(home=tmp_path, **values))
