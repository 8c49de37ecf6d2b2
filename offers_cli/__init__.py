"""`offers`: the command-line client of the offers platform (SPEC §7).

It publishes every command of SPEC §4 (built through the ``contracts`` models, never by hand),
waits for the event or the ``CommandRejected`` that answers it, follows topics live, and reads
the services' read APIs, so a person can play client and freelancer from two terminals.

* ``__main__``: the argument parser and the exit codes;
* ``build``: options → command models;
* ``bus``: Kafka — publish, wait for the answer, watch topics;
* ``read_api``: the services' HTTP read APIs (stdlib ``urllib``);
* ``render``: events, rejections and resources as readable lines;
* ``actions``: what each subcommand does; ``demo``: a whole negotiation, step by step.
"""
