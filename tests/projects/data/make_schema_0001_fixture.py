"""Writes `schema_0001.instproj`: a project as the first schema (revision 0001) stored it.

Run once, when 0001 was the newest schema, and the file was committed; it must not change, since it
stands for files users already have. Kept so anyone can see how it was made:

    python tests/projects/data/make_schema_0001_fixture.py
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from projects import schema  # noqa: E402
from projects.database import APPLICATION_ID, _migration_engine  # noqa: E402

TARGET = HERE / "schema_0001.instproj"


def main() -> None:
    TARGET.unlink(missing_ok=True)
    conn = sqlite3.connect(TARGET)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    engine = _migration_engine(TARGET)
    with engine.begin() as connection:
        schema.upgrade(connection, "0001")
    engine.dispose()
    now = "2026-11-01 10:00:00.000000"
    conn = sqlite3.connect(TARGET)
    with conn:
        conn.execute(
            "INSERT INTO project_settings VALUES (1, 'old project', 512, 512, 50, 7.5, 0.75, 0.36, 'plms', "
            "'lowres', 'demo', ?, ?)",
            (now, now),
        )
        conn.execute(
            "INSERT INTO scenes VALUES (1, 0, 'two shapes', 'a red circle and a blue square', NULL, 512, 512, 7, "
            "'{\"steps\": 20}', ?, ?)",
            (now, now),
        )
        conn.execute(
            "INSERT INTO instances VALUES (1, 1, 0, 'a red circle', 'box', '{\"box\": [0.1, 0.1, 0.4, 0.4]}', 0, "
            "'#ff4d4f', ?, ?)",
            (now, now),
        )
        conn.execute(
            "INSERT INTO instances VALUES (2, 1, 1, 'a blue square', 'point', '{\"point\": [0.7, 0.7]}', 1, "
            "'#4f9dff', ?, ?)",
            (now, now),
        )
        request = (
            '{"alpha": 0.75, "guidance": 7.5, "height": 512, "instances": [{"box": [0.1, 0.1, 0.4, 0.4], '
            '"caption": "a red circle", "kind": "box"}], "mis": 0.36, "model_id": "demo", "negative_prompt": '
            '"lowres", "prompt": "a red circle", "scheduler": "plms", "seed": 7, "steps": 20, "version": 1, '
            '"width": 512}'
        )
        conn.execute(
            "INSERT INTO render_jobs VALUES (1, 1, ?, 'pending', 0, 1, 0, NULL, ?, NULL, NULL)", (request, now)
        )
        conn.execute(
            "INSERT INTO render_jobs VALUES (2, 1, ?, 'running', 0, 2, 1, NULL, ?, ?, NULL)", (request, now, now)
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
