"""One way to reach Temporal, with the data converter every part must share."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

DATA_CONVERTER = pydantic_data_converter


async def connect(address: str, namespace: str = "default") -> Client:
    return await Client.connect(
        address, namespace=namespace, data_converter=DATA_CONVERTER
    )


def workflow_id(dossier_id: str) -> str:
    return f"dossier-{dossier_id}"
