"""What a load test sends and when: workloads (length distributions, shipped profiles), arrival
processes and the schedule built from them. Shared by the load generator and the simulator's
offline driver; no network, no clock."""
from .build import MAX_REQUESTS, Schedule, build_schedule, read_trace
from .workloads import LengthDist, Workload, list_workloads, load_workload

__all__ = ["LengthDist", "MAX_REQUESTS", "Schedule", "Workload", "build_schedule", "list_workloads",
           "load_workload", "read_trace"]
