"""Timestamps as the protocol writes them: RFC 3339 UTC with milliseconds."""

from datetime import UTC, datetime
from functools import lru_cache


# Every ACK of one group commit carries the same commit time, so its DLV
# receipts format the same moment again and again.
@lru_cache(maxsize=16)
def rfc3339(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
