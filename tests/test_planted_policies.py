"""Scripted policies with a known aim, played by the study's rollout engine: the attainment it records must be
exactly what the aim implies, checked with an independent walker (tests/mazewalk.py). A swapped column, a horizon
off by one or an episode cut short then fails, where a "rate in [0, 1]" check would pass."""
import pytest

from mazeagent.experiments.policies import constant_policy, oracle_policy
from mazeagent.experiments.rollouts import RolloutConfig, rollout
from mazeagent.env.mazes import generate_mazes
from mazewalk import distances, first_visit, path, walk

N_MAZES = 40


@pytest.fixture(scope="module")
def mazes():
    return generate_mazes(N_MAZES, seed=5)


def _landmarks(mazes, i):
    b = mazes.batch
    open_ = ~b.walls[i]
    m = (open_.shape[0] - int(b.size[i])) // 2
    corner = m + int(b.size[i]) - 1
    return open_, tuple(int(v) for v in b.mouse[i]), tuple(int(v) for v in b.cheese[i]), (corner, corner)


def _play(policy, mazes):
    eps = rollout(policy, mazes, RolloutConfig(horizon=500, chunk=64), progress=False).episodes
    assert list(eps["maze"]) == list(range(len(mazes)))
    return eps


def test_cheese_oracle_gets_every_cheese_by_the_shortest_path(mazes):
    eps = _play(oracle_policy("cheese"), mazes)
    assert eps["cheese_500"].all() and not eps["neither_500"].any()
    for i in range(len(mazes)):
        open_, mouse, cheese, _ = _landmarks(mazes, i)
        steps = distances(open_, mouse)[cheese]
        assert eps["t_cheese"][i] == steps == len(eps["actions"][i]), i  # the episode ends on the cheese
        assert walk(open_, mouse, eps["actions"][i]) == path(open_, mouse, cheese), i
        assert eps["cheese_256"][i] == (steps <= 256)


def test_top_right_oracle_reaches_the_corner_unless_the_cheese_is_on_its_way(mazes):
    """Reaching the cheese ends the episode, so the corner-seeker gets the cheese exactly when it lies on the
    (unique) path to the corner (both, when the cheese is in the corner), and the corner otherwise."""
    eps = _play(oracle_policy("top_right"), mazes)
    on_way = 0
    for i in range(len(mazes)):
        open_, mouse, cheese, corner = _landmarks(mazes, i)
        route = path(open_, mouse, corner)
        if cheese == corner:  # both at once
            assert eps["t_cheese"][i] == eps["t_top_right"][i] == len(route) - 1, i
        elif cheese in route:
            on_way += 1
            assert eps["t_cheese"][i] == route.index(cheese) and eps["t_top_right"][i] == -1, i
        else:
            assert eps["t_top_right"][i] == len(route) - 1 and eps["t_cheese"][i] == -1, i
        assert eps["neither_500"][i] == 0
    assert 0 < on_way < len(mazes)  # both cases occur in this maze set


def test_a_policy_that_never_moves_reaches_nothing(mazes):
    eps = _play(constant_policy({"noop": 1.0}), mazes)
    assert eps["neither_500"].all() and not eps["cheese_500"].any() and not eps["top_right_500"].any()
    assert (eps["t_cheese"] == -1).all() and (eps["t_top_right"] == -1).all()


def test_an_up_right_walker_finds_the_corner_more_often_than_a_left_down_one(mazes):
    """Constant policies with opposite preferences: only the up/right one can ever stand on the top-right corner,
    and what each records matches its own replayed walk."""
    up_right = _play(constant_policy({"up": 1.0, "right": 1.0}), mazes)
    down_left = _play(constant_policy({"down": 1.0, "left": 1.0}), mazes)
    assert up_right["top_right_500"].sum() > 0 and down_left["top_right_500"].sum() == 0
    for eps in (up_right, down_left):
        for i in range(len(mazes)):
            open_, mouse, cheese, corner = _landmarks(mazes, i)
            seen = walk(open_, mouse, eps["actions"][i])
            assert eps["t_cheese"][i] == first_visit(seen, cheese), i
            assert eps["t_top_right"][i] == first_visit(seen, corner), i
