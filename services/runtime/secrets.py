"""Credentials stay out of what people read: a URL's password (MONGODB_URL, an upstream's
URL) and secret query parameters are replaced by `***` in log lines, /health and errors.
The user name stays: it tells which account, and is no secret."""

from __future__ import annotations

import re
from typing import Final

HIDDEN: Final = "***"
# scheme://user:password@host — the password is anything up to the last @ before the hosts.
_USERINFO: Final = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^\s/]*@")
# ?password=…, &tlsCertificateKeyFilePassword=…, &secret=…, &token=…
_QUERY: Final = re.compile(
    r"(?P<head>[?&;][^=&\s]*(?:password|passwd|pwd|secret|token)[^=&\s]*=)[^&\s]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with every URL's password and every secret query value hidden."""
    if "://" not in text and "=" not in text:
        return text  # neither pattern can match: most log lines, spared two scans
    return _QUERY.sub(rf"\g<head>{HIDDEN}", _USERINFO.sub(rf"\g<head>:{HIDDEN}@", text))
