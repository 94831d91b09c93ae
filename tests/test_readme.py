"""The README's notebook snippet runs as written: it is the first thing a researcher copies, so it must not rot."""
import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def notebook_snippet() -> str:
    """The ```python block of the README's "In a notebook" section."""
    section = README.read_text().split("## In a notebook", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README: no ```python block under '## In a notebook'"
    return match.group(1)


def test_the_readme_notebook_snippet_runs_as_written(tmp_path, monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    import mazeagent as ma

    monkeypatch.chdir(tmp_path)  # the snippet saves maze.json in the working directory
    scope: dict = {}
    exec(compile(notebook_snippet(), str(README), "exec"), scope)

    agent, maze, vf, cache = scope["agent"], scope["maze"], scope["vf"], scope["cache"]
    assert maze.cheese == (12, 12) and maze == ma.Maze.load(tmp_path / "maze.json")
    probs = agent.act_probs(maze)
    assert set(probs) == {"left", "down", "up", "right", "noop"} and abs(sum(probs.values()) - 1) < 1e-5
    assert isinstance(vf.plot(), Figure)
    layer = cache["embedder.block2.res1.resadd_out"]
    assert np.asarray(layer).shape[-1] == 32  # the bundled agent's width at that layer (scale 1)
    # the snippet's patch is a real edit: subtracting the cheese vector changes the policy at the mouse
    with agent.patched(ma.cheese_vector(agent, maze, coeff=-1)):
        patched = agent.act_probs(maze)
    assert max(abs(patched[k] - probs[k]) for k in probs) > 1e-4
