"""Copying instances between scenes (and between windows) through the system clipboard.

Instances travel as JSON: the same `InstanceSpec` dictionaries a render request stores, so what is pasted
is exactly what was copied, in normalised coordinates.
"""

from __future__ import annotations

import json

from PySide6.QtCore import QByteArray, QMimeData

from engine.request import InstanceSpec, RequestValidationError
from projects.scene_data import InstanceData

MIME = "application/x-instance-studio-instances"


def instances_to_mime(instances: list[InstanceData]) -> QMimeData:
    payload = json.dumps({"instances": [{**inst.spec.to_dict(), "locked": inst.locked} for inst in instances]})
    data = QMimeData()
    data.setData(MIME, QByteArray(payload.encode("utf-8")))
    data.setText(payload)
    return data


def instances_from_mime(data: QMimeData | None) -> list[InstanceData]:
    """The instances on the clipboard; anything else (plain text, broken JSON) gives an empty list."""
    if data is None:
        return []
    if data.hasFormat(MIME):
        raw = bytes(data.data(MIME).data()).decode("utf-8", errors="replace")
    elif data.hasText():
        raw = data.text()
    else:
        return []
    try:
        items = json.loads(raw)["instances"]
        result = []
        for item in items:
            locked = bool(item.pop("locked", False))
            result.append(InstanceData(spec=InstanceSpec.from_dict(item), locked=locked))
        return result
    except (ValueError, KeyError, TypeError, AttributeError, RequestValidationError):
        return []
