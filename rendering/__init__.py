"""The Qt-free rendering layer between the GUI (desktop/) and the project file and engine below it.

The queue loop (claim -> render -> store), the job outcomes and the stored PNG, shared by the headless
`render` command and the GUI's render thread. Nothing here imports Qt or the desktop package, and only
`rendering.queue_loop` imports torch (through `engine.runner`): `rendering.outcomes` and
`rendering.output` are cheap to import on a GUI thread.
"""
