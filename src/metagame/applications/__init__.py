"""User-facing helpers per application (data attribution, component attribution, ...).

Each helper builds the right model adapter and calls :func:`metagame.explain`; import the
submodule you need, e.g. ``from metagame.applications.data import explain_data``.
"""
