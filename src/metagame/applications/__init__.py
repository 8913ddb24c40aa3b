"""What every entry point shares: building an adapter and explaining it (``common``), many inputs at once
(``sets``), and the joint game of several adapters (``joint``: ``explain_joint``). Each domain's own entry point
lives in its package (:mod:`metagame.domains`).
"""
