"""The canvas tools: what each one is called, its icon, its shortcut and what it draws."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.request import InstanceKind


class Tool(StrEnum):
    SELECT = "select"
    BOX = "box"
    POINT = "point"
    SCRIBBLE = "scribble"
    POLYGON = "polygon"
    BRUSH = "brush"
    ERASER = "eraser"


@dataclass(frozen=True)
class ToolInfo:
    tool: Tool
    label: str
    shortcut: str
    help: str
    kind: InstanceKind | None  # what a new shape drawn with it is


TOOLS: tuple[ToolInfo, ...] = (
    ToolInfo(Tool.SELECT, "Select", "V", "Select, move and resize; drag a polygon's vertices", None),
    ToolInfo(Tool.BOX, "Box", "B", "Drag a box", InstanceKind.BOX),
    ToolInfo(Tool.POINT, "Point", "P", "Click to place a point", InstanceKind.POINT),
    ToolInfo(Tool.SCRIBBLE, "Scribble", "S", "Drag a freehand scribble inside the object", InstanceKind.SCRIBBLE),
    ToolInfo(
        Tool.POLYGON,
        "Polygon",
        "G",
        "Click the vertices; double-click or Enter closes, Esc cancels",
        InstanceKind.MASK,
    ),
    ToolInfo(
        Tool.BRUSH,
        "Brush",
        "R",
        "Paint a mask (onto the selected mask, or a new one); [ and ] change the radius",
        InstanceKind.MASK,
    ),
    ToolInfo(Tool.ERASER, "Eraser", "E", "Erase from the selected mask; [ and ] change the radius", InstanceKind.MASK),
)


def tool_info(tool: Tool) -> ToolInfo:
    return next(info for info in TOOLS if info.tool is tool)
