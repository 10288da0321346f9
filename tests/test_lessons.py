"""Every lesson runs end to end in quick mode, so none of them rots (d2l's habit)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

LESSONS = sorted((Path(__file__).resolve().parents[1] / "lessons").glob("[0-9][0-9]_*.py"))


def test_the_lessons_are_numbered_without_gaps():
    numbers = [int(p.name[:2]) for p in LESSONS]
    assert numbers == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_in_quick_mode_and_draws_its_figures(lesson, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0")
    result = subprocess.run([sys.executable, str(lesson), "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, env=env, cwd=lesson.parent, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = list(tmp_path.glob("*.png"))
    assert figures, "a lesson must draw at least one figure"
    assert all(f.stat().st_size > 1000 for f in figures)


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_converts_to_a_notebook(lesson):
    """The percent format holds: jupytext (the `notebooks` extra) gives a title cell, text and code."""
    jupytext = pytest.importorskip("jupytext")
    cells = jupytext.read(lesson).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# Lesson {lesson.name[:2]} — ")
    code = [c.source for c in cells if c.cell_type == "code"]
    assert len(code) >= 3 and sum(c.cell_type == "markdown" for c in cells) >= 3
    compile("\n".join(code), str(lesson), "exec")
