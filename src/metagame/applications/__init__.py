"""What every entry point shares: building an adapter and explaining it (``common``), many inputs at once
(``sets``), defaults, and games that mix the players of several adapters (``joint``: ``explain_joint``,
``explain_feature_data``). Each domain's own entry point lives in its package (:mod:`metagame.domains`).
"""
