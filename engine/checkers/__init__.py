"""Placement checkers: read a render and say, per instance, whether it landed where its layout asked.

`base` holds the protocol and the overlap measures every checker shares; `shape_world` checks the demo
model's renders with the shape-world analyser; `detector` runs an open-vocabulary detector from the
user's own files (`detector_files` checks that folder without loading it); `selection.checker_for` says
which one reads a model's renders.
"""
