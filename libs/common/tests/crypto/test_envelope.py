import pytest

from custody_common.crypto.envelope import LocalKeyFile, new_data_key
from custody_common.errors import ConfigurationError, IntegrityError


def test_wrap_unwrap_and_rotation_keeps_old_keys(tmp_path) -> None:
    provider = LocalKeyFile(tmp_path / "kek.json")
    assert (tmp_path / "kek.json").stat().st_mode & 0o777 == 0o600
    dek = new_data_key()
    old = provider.wrap(dek, b"item-1")
    assert provider.unwrap(old, b"item-1") == dek
    new_id = provider.rotate()
    assert new_id == "local-2" and provider.current_kek_id() == "local-2"
    rewrapped = provider.wrap(provider.unwrap(old, b"item-1"), b"item-1")
    assert rewrapped.kek_id == "local-2"
    # another process sees the rotation
    assert LocalKeyFile(tmp_path / "kek.json").unwrap(rewrapped, b"item-1") == dek
    provider.retire("local-1")
    with pytest.raises(ConfigurationError):
        provider.unwrap(old, b"item-1")
    with pytest.raises(ConfigurationError):
        provider.retire("local-2")


def test_wrapped_key_is_bound_to_its_item(tmp_path) -> None:
    provider = LocalKeyFile(tmp_path / "kek.json")
    wrapped = provider.wrap(new_data_key(), b"item-1")
    with pytest.raises(IntegrityError):
        provider.unwrap(wrapped, b"item-2")


def test_a_rotation_by_another_process_is_used_for_new_wraps(tmp_path) -> None:
    running = LocalKeyFile(tmp_path / "kek.json")
    LocalKeyFile(tmp_path / "kek.json").rotate()
    assert running.wrap(new_data_key(), b"item-1").kek_id == "local-2"


def test_a_new_kek_version_is_made_durable_with_its_folder(tmp_path, monkeypatch) -> None:
    """The rename that puts a rotated key file in place lives in the folder: unless the folder
    is fsynced too, a power cut can take the new KEK while what it wrapped is committed."""
    synced: list = []
    monkeypatch.setattr("custody_common.durable.fsync_folder", synced.append)
    provider = LocalKeyFile(tmp_path / "keys" / "kek.json")
    synced.clear()
    provider.rotate()
    assert synced == [tmp_path / "keys"]
