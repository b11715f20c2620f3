"""Deterministic sample data for the local stand-ins of the source systems.

The same seed always yields the same records, so tests can assert exact values and two runs of
the pipeline see the same world.
"""
