"""The headless commands of `main.py` (render, import, export, info, models): no Qt, no desktop package.

`cli.parser` builds the command line, `cli.entry.run` runs one command with the exit codes and one-line
errors scripts rely on; the commands live in `cli.project_files`, `cli.render` and `cli.models`. The GUI
command is passed in by `main.py`, the only place that imports the desktop package.
"""
