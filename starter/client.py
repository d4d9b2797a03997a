"""One way to reach Temporal, with the data converter every part must share."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

# One pydantic JSON converter, and so one cache of pydantic TypeAdapters, for
# the whole process. The SDK makes a new payload converter for every workflow
# run it starts or replays; with the SDK's own pydantic converter each of them
# built the TypeAdapters of the dossier's input, signals and activity results
# again (a twentieth of the worker's CPU in the bench).
_PYDANTIC_JSON = PydanticJSONPlainPayloadConverter()


class PayloadConverter(CompositePayloadConverter):
    """The SDK's default converters, with pydantic's JSON in place of plain JSON.

    The same payloads as `temporalio.contrib.pydantic.pydantic_data_converter`;
    only the TypeAdapter cache is shared.
    """

    def __init__(self) -> None:
        super().__init__(
            *(
                _PYDANTIC_JSON
                if isinstance(converter, JSONPlainPayloadConverter)
                else converter
                for converter in (
                    DefaultPayloadConverter.default_encoding_payload_converters
                )
            )
        )


DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)


async def connect(address: str, namespace: str = "default") -> Client:
    return await Client.connect(
        address, namespace=namespace, data_converter=DATA_CONVERTER
    )


def workflow_id(dossier_id: str) -> str:
    return f"dossier-{dossier_id}"
