"""The fake NgDP itself answers as PROTOCOLS.md §4.3 describes (status codes, shapes, Range)."""

from __future__ import annotations

import base64
import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from ngdp_env import CVR, Ngdp

from sandbox.providers.ngdp import NgdpFake
from sandbox.generator import generate


@pytest.fixture
async def client(ngdp: Ngdp) -> AsyncIterator[httpx.AsyncClient]:
    creds = ngdp.fake.credentials()
    tls = ssl.create_default_context(cafile=str(ngdp.ca.cert_path))
    tls.load_cert_chain(creds["client_cert"], creds["client_key"])
    token = base64.b64encode(f"{creds['system_id']}:{creds['api_token']}".encode()).decode()
    async with httpx.AsyncClient(base_url=ngdp.base_url + "/", verify=tls,
                                 headers={"Authorization": f"Basic {token}"}) as http:
        yield http


def _receipt(key: str, **changes: Any) -> dict[str, Any]:
    body = {"transmissionId": str(uuid.uuid4()), "messageUUID": key, "messageId": None,
            "errorCode": None, "errorMessage": None, "receiptStatus": "COMPLETED",
            "timeStamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    body.update(changes)
    return body


async def test_listing_is_a_zero_based_paging_result(ngdp: Ngdp, client: httpx.AsyncClient) -> None:
    keys = ngdp.fake.add_messages(generate(CVR, 25, seed=1))
    first = (await client.get("memos/", params={"page": 0, "size": 10})).json()
    last = (await client.get("memos/", params={"page": 2, "size": 10})).json()
    beyond = (await client.get("memos/", params={"page": 3, "size": 10})).json()
    assert first["content"] == keys[:10] and first["previous"] is None
    assert first["next"] == {"page": 1, "size": 10, "ordering": None}
    assert (first["totalElements"], first["totalPages"], first["number"]) == (25, 3, 0)
    assert last["content"] == keys[20:] and last["next"] is None
    assert beyond["content"] == []


@pytest.mark.parametrize("params", [{"size": 0}, {"size": 5000}, {"page": -1}, {"page": "x"},
                                    {"sort": "receivedDateTime"}])
async def test_bad_listing_parameters_are_400_error_messages(client: httpx.AsyncClient,
                                                            params: dict[str, Any]) -> None:
    response = await client.get("memos/", params=params)
    assert response.status_code == 400
    assert set(response.json()) == {"code", "message", "fieldErrors"}


async def test_fetch_supports_range_with_206(ngdp: Ngdp, client: httpx.AsyncClient) -> None:
    [key] = ngdp.fake.add_messages(generate(CVR, 1, seed=2))
    whole = await client.get(f"memos/{key}")
    assert whole.status_code == 200 and whole.headers["content-type"].startswith("application/xml")
    assert whole.headers["accept-ranges"] == "bytes"
    part = await client.get(f"memos/{key}", headers={"Range": "bytes=100-"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-{len(whole.content) - 1}/{len(whole.content)}"
    assert part.content == whole.content[100:]
    suffix = await client.get(f"memos/{key}", headers={"Range": "bytes=-10"})
    assert suffix.content == whole.content[-10:]
    unsatisfiable = await client.get(f"memos/{key}", headers={"Range": f"bytes={len(whole.content)}-"})
    assert unsatisfiable.status_code == 416
    # downloads are the whole body and the open-ended resume; a suffix range is a partial read
    assert ngdp.fake.fetch_counts() == {key: 2}


async def test_unknown_memo_is_404_error_message(client: httpx.AsyncClient) -> None:
    response = await client.get(f"memos/{uuid.uuid4()}")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize("redelete", [404, 409])
async def test_delete_then_delete_again(ngdp: Ngdp, client: httpx.AsyncClient, redelete: int) -> None:
    ngdp.fake.redelete_status = redelete
    [key] = ngdp.fake.add_messages(generate(CVR, 1, seed=3))
    assert (await client.delete(f"memos/{key}")).status_code == 204
    assert (await client.delete(f"memos/{key}")).status_code == redelete
    assert (await client.get(f"memos/{key}")).status_code == 404
    assert (await client.get("memos/")).json()["content"] == []


async def test_business_receipt_validation(ngdp: Ngdp, client: httpx.AsyncClient) -> None:
    [key] = ngdp.fake.add_messages(generate(CVR, 1, seed=4))
    invalid = await client.post(f"memos/{key}/receipt",
                                json=_receipt(key, receiptStatus="DONE", timeStamp="2025-01-01T10:00:00"))
    assert invalid.status_code == 422
    assert {e["field"] for e in invalid.json()["fieldErrors"]} == {"receiptStatus", "timeStamp"}
    wrong_uuid = await client.post(f"memos/{key}/receipt", json=_receipt(str(uuid.uuid4())))
    assert wrong_uuid.status_code == 422
    assert (await client.post(f"memos/{key}/receipt", json=_receipt(key))).status_code == 200
    assert (await client.post(f"memos/{key}/receipt", json=_receipt(key))).status_code == 409
    assert (await client.post(f"memos/{uuid.uuid4()}/receipt", json=_receipt(key))).status_code == 404


async def test_without_client_certificate_is_401(ngdp: Ngdp) -> None:
    tls = ssl.create_default_context(cafile=str(ngdp.ca.cert_path))
    async with httpx.AsyncClient(verify=tls) as anonymous:
        response = await anonymous.get(ngdp.base_url + "/memos/")
    assert response.status_code == 401


async def test_sender_flow_validates_and_answers_with_a_receipt(ngdp: Ngdp, client: httpx.AsyncClient) -> None:
    from connectors.memo import build_memo

    [message] = generate(CVR, 1, seed=5)
    raw = build_memo(message)
    headers = {"Content-Type": "application/xml"}
    mismatch = await client.post("memos/", params={"memo-message-uuid": str(uuid.uuid4())},
                                 content=raw, headers=headers)
    assert mismatch.status_code == 400 and mismatch.json()["fieldErrors"][0]["field"] == "memo-message-uuid"
    broken = await client.post("memos/", params={"memo-message-uuid": message.message_id},
                               content=raw.replace(b"memoVersion=", b"memoVersionX=", 1), headers=headers)
    assert broken.status_code == 400 and broken.json()["code"] == "INVALID_MEMO"
    ok = await client.post("memos/", params={"memo-message-uuid": message.message_id},
                           content=raw, headers=headers)
    assert ok.status_code == 201
    assert ok.json()["messageUUID"] == message.message_id and ok.json()["receiptStatus"] == "RECEIVED"
    assert ngdp.fake.sent[message.message_id] == raw


def test_fake_rejects_unknown_settings() -> None:
    with pytest.raises(ValueError):
        NgdpFake(system_id="s", api_token="t", client_cn="c", memo_version="2.0")
    with pytest.raises(ValueError):
        NgdpFake(system_id="s", api_token="t", client_cn="c", redelete_status=410)
