"""Experiments over maze batches: the behaviour study and prediction scorecard, and the shared report that
later studies extend.

rollouts (play a policy on generated mazes) → behaviour (B1, B2, F1–F10), f11 (hand edits), decision
(decision-square action probabilities), conformity (U1–U3) → stats (regressions, intervals) + verdicts (the
resolution rules of docs/predictions.md, Brier) + published (the original posts' numbers, published.toml) → report
(report.md, index.html, figures, results.json, wandb; wall times in timing.json). ``study.run_study`` ties them
together; ``study.run_shard`` / ``study.merge_study`` (+ ``shards``) split the rollouts over Slurm array tasks with
the same results.json; ``l1logit`` fits all regressions of a table at once; ``cli`` exposes ``mazeagent study``
(``--shard I/K``, ``--merge K``), ``mazeagent demo``, ``mazeagent bench rollouts`` and ``bench study-factors``.
"""
