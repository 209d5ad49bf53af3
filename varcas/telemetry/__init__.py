"""Server telemetry: the server's Prometheus /metrics and its GPUs' (a dcgm-exporter's /metrics,
or NVML for a server on this host), sampled during a run into metrics.parquet.

scrape.py is the scraper (a process of its own, so that parsing never holds the load
generator's GIL or delays a token read); nvml.py reads this host's GPUs in that process; the
file's format, writer and reader are varcas.metricsfile, part of the run-directory contract
that the analysis reads.
"""
