"""Which backend answers: the reachability probe, the local server, and the ladder.

Owns the order apex → local (DESIGN.md "Backends, in order"), the cached probe verdict and
the decision to fall back. Never imports click, rich or prompt-toolkit: it reports through
callbacks and returns results.
"""
