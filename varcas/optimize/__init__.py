"""varcas.optimize: sweeps of server settings and request rates, their comparison, and the
recommendation per use case. Each configuration's runs are normal run directories."""
