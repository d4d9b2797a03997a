"""The one data converter: pydantic's payloads, with one TypeAdapter cache."""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter

from starter.client import _PYDANTIC_JSON, DATA_CONVERTER, PayloadConverter
from tests.factories import training_dossier
from workflows.messages import DossierInput


def test_payloads_are_the_sdk_pydantic_converters_payloads() -> None:
    dossier = training_dossier()
    ours = DATA_CONVERTER.payload_converter.to_payloads([dossier])
    sdk = pydantic_data_converter.payload_converter.to_payloads([dossier])
    assert ours == sdk
    assert ours[0].metadata["encoding"] == b"json/plain"
    [back] = PayloadConverter().from_payloads(ours, [DossierInput])
    assert back == dossier


def test_every_converter_shares_one_type_adapter_cache() -> None:
    """The SDK makes a converter per workflow run: the adapters are made once."""
    payloads = DATA_CONVERTER.payload_converter.to_payloads([training_dossier()])
    PayloadConverter().from_payloads(payloads, [DossierInput])
    cached = _PYDANTIC_JSON._type_adapter.cache_info()
    for _ in range(3):
        PayloadConverter().from_payloads(payloads, [DossierInput])
    after = _PYDANTIC_JSON._type_adapter.cache_info()
    assert after.currsize == cached.currsize
    assert after.hits == cached.hits + 3


def test_other_types_still_round_trip() -> None:
    converter = PayloadConverter()
    values = [None, b"\x00bytes", {"a": 1}, "text"]
    payloads = converter.to_payloads(values)
    assert converter.from_payloads(payloads) == values
    assert [p.metadata["encoding"] for p in payloads] == [
        b"binary/null",
        b"binary/plain",
        b"json/plain",
        b"json/plain",
    ]
