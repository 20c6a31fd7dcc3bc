"""Mutation fuzzing of the full per-frame path (see :mod:`tests.fuzz.corpus`)."""
