"""The pure rules of offer_service: no I/O, no framework. Most tests live against these."""
