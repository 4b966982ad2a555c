"""The callback crypto against WeCom's official sample vectors, and what it refuses."""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from qunyun.connectors.wecom.crypto import CryptoError, WeComCrypto, pad, parse_xml, signature, unpad
from tests.connectors.wecom.conftest import AES_KEY, CORP_ID, TOKEN

# URL verification (GET) of WeCom's sample: msg_signature, timestamp, nonce, echostr → the answer.
VERIFY = (
    "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
    "1476416373",
    "47744683",
    "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA==",
    "1288432023552776189",
)
# A message (POST) of WeCom's sample.
MESSAGE_SIGNATURE = "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
MESSAGE_TIMESTAMP = "1476422779"
MESSAGE_NONCE = "1597212914"
MESSAGE_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+"
    "kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4"
    "ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux"
    "082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)
MESSAGE_BODY = (
    f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>\n<Encrypt><![CDATA[{MESSAGE_ENCRYPT}]]></Encrypt>\n"
    "<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
)


def test_official_url_verification_vector(crypto: WeComCrypto) -> None:
    sig, ts, nonce, echostr, answer = VERIFY
    assert signature(TOKEN, ts, nonce, echostr) == sig
    assert crypto.decrypt(echostr) == answer.encode()


def test_official_message_vector(crypto: WeComCrypto) -> None:
    assert crypto.sign(MESSAGE_TIMESTAMP, MESSAGE_NONCE, MESSAGE_ENCRYPT) == MESSAGE_SIGNATURE
    outer = parse_xml(MESSAGE_BODY.encode())
    assert outer["Encrypt"] == MESSAGE_ENCRYPT
    inner = parse_xml(crypto.decrypt(MESSAGE_ENCRYPT))
    assert inner == {
        "ToUserName": CORP_ID,
        "FromUserName": "ChenJiaShun",
        "CreateTime": "1476422779",
        "MsgType": "text",
        "Content": "你好",
        "MsgId": "1456453720",
        "AgentID": "1000002",
    }


def test_padding_is_to_32_bytes_and_the_pad_byte_can_exceed_16() -> None:
    for n in range(0, 70):
        padded = pad(b"x" * n)
        assert len(padded) % 32 == 0 and 1 <= padded[-1] <= 32
        assert unpad(padded) == b"x" * n
    assert pad(b"x" * 8)[-1] == 24  # > 16: a 16-byte PKCS#7 unpadder would refuse it
    with pytest.raises(CryptoError):
        unpad(b"x" * 31 + bytes([33]))
    with pytest.raises(CryptoError):
        unpad(b"x" * 30 + bytes([3, 2]))


def test_round_trip_and_fixed_random_prefix(crypto: WeComCrypto) -> None:
    encrypted = crypto.encrypt("<xml><A>中文</A></xml>".encode(), random16=b"0123456789abcdef")
    assert crypto.encrypt("<xml><A>中文</A></xml>".encode(), random16=b"0123456789abcdef") == encrypted
    assert crypto.decrypt(encrypted).decode() == "<xml><A>中文</A></xml>"


def test_the_receive_id_must_be_the_corp_id() -> None:
    other = WeComCrypto(TOKEN, AES_KEY, "wwsomeoneelse00001")
    encrypted = other.encrypt(b"<xml/>")
    with pytest.raises(CryptoError) as err:
        WeComCrypto(TOKEN, AES_KEY, CORP_ID).decrypt(encrypted)
    assert err.value.reason == "receive_id"


def test_garbage_is_refused(crypto: WeComCrypto) -> None:
    for bad in ("not base64!", base64.b64encode(b"short").decode(), base64.b64encode(b"\0" * 32).decode()):
        with pytest.raises(CryptoError):
            crypto.decrypt(bad)
    # A length field pointing past the end.
    key = base64.b64decode(AES_KEY + "=")
    plain = pad(b"r" * 16 + struct.pack(">I", 10_000) + b"abc" + CORP_ID.encode())
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    with pytest.raises(CryptoError):
        crypto.decrypt(base64.b64encode(enc.update(plain) + enc.finalize()).decode())
    with pytest.raises(CryptoError):
        WeComCrypto(TOKEN, "short", CORP_ID)


def test_xml_with_a_doctype_is_refused() -> None:
    with pytest.raises(CryptoError):
        parse_xml('<!DOCTYPE x [<!ENTITY a "b">]><xml><A>&a;</A></xml>')
    with pytest.raises(CryptoError):
        parse_xml("<notxml/>")
    assert parse_xml("<xml><L><Item>a</Item><Item>b</Item></L><E></E></xml>") == {"L": ["a", "b"], "E": ""}
