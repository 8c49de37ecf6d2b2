"""The command gateway: the browsers' front door (SPEC §6). It validates a command with
``contracts/``, publishes it to its topic, tells the outcome, proxies the read APIs and
their streams, and serves the browser client for both parties from ``static/``."""
