"""The member directory of each wedding (filled from tokens, edited through the API), each
person's notification settings and inbox. Its rows are kept by the threads feature's
tables (:mod:`crdt_server.features.threads.db`) and it is run by that feature."""
