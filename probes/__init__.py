"""Mechanistic tools for maze agents: activation datasets (:mod:`probes.dataset`), linear probes
(:mod:`probes.linear`), composable interventions (:mod:`probes.interventions`), steering vectors
(:mod:`probes.steering`), channel discovery (:mod:`probes.channels`), vector fields (:mod:`probes.vfield`) and the
ME/O/IG experiments (:mod:`probes.experiments` and its ``exp_*`` modules, ``mazeagent probes``)."""

EXPERIMENTS = ("o2", "me2", "me1", "cv", "me6", "paths", "o1", "o3", "me3")  # run order; the one list (probes.experiments.RUNNERS has them)
