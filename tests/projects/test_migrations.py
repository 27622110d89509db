import shutil
import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select

from engine.request import InstanceKind
from projects import queue, schema
from projects.database import Project
from projects.models import Base, JobStatus, RenderJob
from projects.scenes import get_settings, list_scenes, scene_to_request

FIXTURE = Path(__file__).with_name("data") / "schema_0001.instproj"


def test_models_match_the_migrated_schema(project: Project) -> None:
    with project.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_new_projects_are_at_the_head_revision(project: Project) -> None:
    with project.read() as session:
        (revision,) = session.connection().exec_driver_sql("SELECT version_num FROM alembic_version").one()
    assert revision == schema.head_revision()
    assert project.report.migrated_from is None


def test_file_from_the_first_schema_opens_upgraded_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.instproj"
    shutil.copy(FIXTURE, path)
    with Project.open(path) as project:
        report = project.report
        with project.read() as session:
            settings = get_settings(session)
            assert (settings.name, settings.negative_prompt) == ("old project", "lowres")
            (scene,) = list_scenes(session)
            assert scene.name == "two shapes"
            assert [(i.caption, i.kind, i.locked) for i in scene.instances] == [
                ("a red circle", "box", False),
                ("a blue square", "point", True),
            ]
            request = scene_to_request(session, scene)
            assert request.steps == 20 and request.seed == 7
            assert request.instances[1].kind is InstanceKind.POINT
            jobs = {job.id: job for job in session.scalars(select(RenderJob))}
            assert (jobs[1].progress_step, jobs[1].progress_total) == (0, 0)
            assert queue.JobSnapshot.of(jobs[1]).request.prompt == "a red circle"
            # The job the old app left running is recovered like any crash.
            assert jobs[2].status == JobStatus.PENDING.value
    assert report.migrated_from == "0001"
    assert report.requeued_jobs == (2,)

    # The backup is the file as it was, and opening it again needs no second migration.
    assert report.backup is not None and report.backup.parent == tmp_path
    conn = sqlite3.connect(report.backup)
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
    assert conn.execute("SELECT status FROM render_jobs WHERE id = 2").fetchone() == ("running",)
    conn.close()
    with Project.open(path) as project:
        assert project.report.migrated_from is None and project.report.backup is None


def test_file_from_the_second_schema_gains_cancel_requests_none_set(tmp_path: Path) -> None:
    path = tmp_path / "second.instproj"
    shutil.copy(FIXTURE, path)
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            schema.upgrade(connection, "0002")
    finally:
        engine.dispose()
    with Project.open(path) as project:
        assert project.report.migrated_from == "0002"
        with project.read() as session:
            jobs = {job.id: (job.status, job.cancel_requested) for job in session.scalars(select(RenderJob))}
    assert jobs and not any(requested for _status, requested in jobs.values())
    assert jobs[2][0] == JobStatus.PENDING.value  # left running, never cancelled: recovered as before
    assert project.report.requeued_jobs == (2,)


def test_fixture_file_is_still_the_first_schema() -> None:
    conn = sqlite3.connect(f"{FIXTURE.as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0001",)
    finally:
        conn.close()
