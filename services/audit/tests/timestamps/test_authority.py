"""The time-stamping authority client against a real one (``openssl ts -reply`` behind HTTP):
what it asks (a TimeStampReq over SHA-256 of the body, certificates, a nonce), and every reply
it must refuse before anything is kept."""

from __future__ import annotations

import base64
import hashlib
import logging
import subprocess
from pathlib import Path

import pytest
from rfc3161_client import VerifierBuilder, decode_timestamp_response

from custody_audit.timestamps.authority import (
    QUERY_TYPE,
    AuthorityUnavailable,
    ReplyRejected,
    TimestampAuthority,
    check_reply,
    load_roots,
)
from custody_common.errors import ConfigurationError
from tests.support.tsa import OpensslTsa, TsaServer

BODY = b"custody.test/log\n42\n" + b"A" * 43 + b"=\n"


def _query_text(folder: Path, query: bytes) -> str:
    (folder / "query.tsq").write_bytes(query)
    done = subprocess.run(
        ["openssl", "ts", "-query", "-in", "query.tsq", "-text"], cwd=folder, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _message_data(query_text: str) -> bytes:
    """The imprint's bytes in ``openssl ts -query -text`` output (``0000 - 58 91 b5 …-6d …``)."""
    lines = query_text.split("Message data:\n", 1)[1].splitlines()
    dumped = [line.split(" - ", 1)[1][:47] for line in lines if line.startswith("    ") and " - " in line]
    return bytes.fromhex("".join(dumped).replace("-", " "))


async def test_a_granted_token_over_the_body_with_certificates_and_a_nonce(
    tsa: OpensslTsa, tsa_server: TsaServer, tmp_path: Path
) -> None:
    authority = TimestampAuthority(tsa_server.url, timeout=10, roots=load_roots(tsa.root))
    try:
        stamp = await authority.stamp(BODY)
    finally:
        await authority.close()
    [received] = tsa_server.received
    assert received.content_type == QUERY_TYPE
    query = _query_text(tmp_path, received.body)
    assert "Hash Algorithm: sha256" in query
    assert "Certificate required: yes" in query
    assert "Nonce: unspecified" not in query and "Nonce: 0x" in query
    assert _message_data(query) == hashlib.sha256(BODY).digest()
    # What was kept is the reply as sent, and it verifies with the root pinned.
    assert stamp.response == tsa_server.replies[0]
    response = decode_timestamp_response(stamp.response)
    assert response.tst_info.message_imprint.message == hashlib.sha256(BODY).digest()
    assert VerifierBuilder(roots=load_roots(tsa.root)).build().verify_message(response, BODY)
    assert stamp.gen_time == response.tst_info.gen_time


async def test_a_replayed_reply_is_refused(tsa_server: TsaServer) -> None:
    authority = TimestampAuthority(tsa_server.url, timeout=10)
    try:
        await authority.stamp(BODY)
        tsa_server.replaying = True
        with pytest.raises(ReplyRejected, match="another document"):
            await authority.stamp(b"another checkpoint\n")
        with pytest.raises(ReplyRejected, match="another nonce"):
            await authority.stamp(BODY)
    finally:
        await authority.close()


async def test_a_token_under_another_root_is_refused(tsa_server: TsaServer, tmp_path: Path) -> None:
    stranger = OpensslTsa.create(tmp_path / "stranger", name="Another TSA")
    authority = TimestampAuthority(tsa_server.url, timeout=10, roots=load_roots(stranger.root))
    try:
        with pytest.raises(ReplyRejected, match="does not verify under the configured roots"):
            await authority.stamp(BODY)
    finally:
        await authority.close()


async def test_a_refusal_by_the_authority_is_refused(tmp_path: Path) -> None:
    picky = TsaServer(OpensslTsa.create(tmp_path / "picky", digests="sha512"))
    picky.start()
    authority = TimestampAuthority(picky.url, timeout=10)
    try:
        with pytest.raises(ReplyRejected, match="refused the request .*algorithm is not supported"):
            await authority.stamp(BODY)
    finally:
        await authority.close()
        picky.stop()


async def test_an_authority_down_or_failing_is_unavailable(tsa_server: TsaServer) -> None:
    authority = TimestampAuthority(tsa_server.url, timeout=10)
    try:
        tsa_server.failing_status = 503
        with pytest.raises(AuthorityUnavailable, match="answered HTTP 503"):
            await authority.stamp(BODY)
        tsa_server.stop()
        with pytest.raises(AuthorityUnavailable, match="cannot be reached"):
            await authority.stamp(BODY)
    finally:
        await authority.close()


async def test_credentials_in_the_url_are_sent_but_never_named(
    tsa_server: TsaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = tsa_server.url.replace("http://", "http://custody:s3cret@")
    authority = TimestampAuthority(url, timeout=10)
    try:
        await authority.stamp(BODY)
        tsa_server.failing_status = 500
        with pytest.raises(AuthorityUnavailable) as raised:
            await authority.stamp(BODY)
    finally:
        await authority.close()
    assert [r.authorization for r in tsa_server.received] == ["Basic " + base64.b64encode(b"custody:s3cret").decode()] * 2
    assert authority.name == tsa_server.url
    assert "s3cret" not in str(raised.value) and "s3cret" not in caplog.text


def test_what_is_not_a_reply_is_refused() -> None:
    with pytest.raises(ReplyRejected, match="not an RFC 3161 TimeStampResp"):
        check_reply(b"<html>proxy error</html>", hashlib.sha256(BODY).digest(), 1)


def test_roots_that_cannot_be_read_stop_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_roots(tmp_path / "missing.pem")
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigurationError, match="holds no PEM certificate"):
        load_roots(tmp_path / "empty.pem")
