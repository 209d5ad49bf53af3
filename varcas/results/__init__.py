"""varcas.results: what a set of runs says, read back from their directories, for the
commands that make the runs (optimize, sweep-rate, pipeline) and the one that shows them
(report). Digests of single runs, the sweep directory's layout, the comparison of a sweep's
configurations (rows, Pareto front, recommendations, roofline explanation), how a row reads,
and the versioned result files. Nothing here starts a server or sends a request."""
