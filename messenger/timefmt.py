"""Timestamps as the protocol writes them: RFC 3339 UTC with milliseconds."""

from datetime import datetime, timezone


def rfc3339(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
