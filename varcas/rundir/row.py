"""The request row, declared once: each column's name, Arrow type and nullability, in the order
of requests.arrows and requests.parquet.

REQUEST_SCHEMA, the recorder's named record() and the readers' column groups are all derived
from REQUEST_FIELDS; changing it changes the files, so it needs a new SCHEMA_VERSION.
"""
from __future__ import annotations

import pyarrow as pa

_LABEL = pa.dictionary(pa.int8(), pa.string())  # a few distinct strings, stored once per batch

REQUEST_FIELDS = (
    pa.field("request_id", pa.int64(), nullable=False),  # index in the schedule
    pa.field("scheduled_ns", pa.int64(), nullable=False),  # when the schedule said to send it
    pa.field("slot_wait_ns", pa.int64(), nullable=False),  # waiting for a --max-concurrency slot
    pa.field("sent_ns", pa.int64()),  # request bytes handed to the socket
    pa.field("first_byte_ns", pa.int64()),  # first response byte
    pa.field("first_token_ns", pa.int64()),  # first SSE event carrying generated content
    pa.field("end_ns", pa.int64()),  # stream end ([DONE]), error or timeout
    pa.field("token_ns", pa.list_(pa.int64())),  # every content event's arrival, in order
    pa.field("input_tokens", pa.int32()),  # the server's usage (null if not reported)
    pa.field("output_tokens", pa.int32()),  # the server's usage (null if not reported)
    pa.field("requested_input_tokens", pa.int32(), nullable=False),  # prompt length planned
    pa.field("requested_output_tokens", pa.int32(), nullable=False),  # max_tokens sent
    pa.field("http_status", pa.int16(), nullable=False),  # 0 if no response
    pa.field("error", _LABEL),  # null when ok, else one of ERROR_KINDS
    pa.field("finish_reason", _LABEL),  # as the server said
)

# The columns that are instants of the generator's clock (every *_ns but slot_wait_ns, a duration):
# what the driver shifts to its own clock when a worker ran on another host (varcas.load.rayworkers).
INSTANT_COLUMNS = tuple(f.name for f in REQUEST_FIELDS if f.name.endswith("_ns") and f.name != "slot_wait_ns")
