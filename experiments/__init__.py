"""Experiments over maze batches: the behaviour study and prediction scorecard (issue 7), and the shared report
that later studies extend.

rollouts (play a policy on generated mazes) → behaviour (B1, B2, F1–F11), decision (decision-square action
probabilities), conformity (U1–U3) → stats (regressions, intervals) + verdicts (rules, Brier) → report
(report.md, index.html, figures, results.json, wandb). ``study.run_study`` ties them together; ``cli`` exposes
``mazeagent study``, ``mazeagent demo`` and ``mazeagent bench rollouts``.
"""
