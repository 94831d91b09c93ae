"""Mechanistic tools for maze agents: activation datasets (:mod:`mazeagent.probes.dataset`), linear probes
(:mod:`mazeagent.probes.linear`), composable interventions (:mod:`mazeagent.probes.interventions`), steering vectors
(:mod:`mazeagent.probes.steering`), channel discovery (:mod:`mazeagent.probes.channels`), vector fields (:mod:`mazeagent.probes.vfield`) and the
ME/O/IG experiments (:mod:`mazeagent.probes.experiments` and its ``exp_*`` modules, ``mazeagent probes``)."""

EXPERIMENTS = ("o2", "me2", "me1", "cv", "me6", "paths", "o1", "o3", "me3")  # run order; the one list (mazeagent.probes.experiments.RUNNERS has them)
