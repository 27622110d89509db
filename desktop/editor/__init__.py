"""The editor layer: one widget-free `SceneEditor` per open scene (document, undo stack, every edit),
and the `Workbench` that holds them. The canvas and the panels only call into it."""
