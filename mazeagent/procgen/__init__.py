"""The real procgen maze backend: state bytes <-> Level, validated ``set_state`` edits, ``rand_region`` on stock
procgen. Importing this package does not import procgen; :class:`ProcgenMaze` does when constructed."""
from mazeagent.procgen.backend import (ProcgenLevel, ProcgenMaze, benchmark_state_io, grid_from_level,
                                       level_from_grid)
from mazeagent.procgen.state import InvalidStateError, MazeState, parse_state, serialize_state, validate_state

__all__ = ["InvalidStateError", "MazeState", "ProcgenLevel", "ProcgenMaze", "benchmark_state_io",
           "grid_from_level", "level_from_grid", "parse_state", "serialize_state",
           "validate_state"]
