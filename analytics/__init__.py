"""The reference analytics consumer: the event topics folded, exactly once, into an offer
funnel in DuckDB (see the README, "Analytics: the reference consumer"). It imports nothing
from services/, as a data team in another repository would not."""
