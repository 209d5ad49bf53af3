"""Paths of the reference data shipped inside the package (varcas/data/)."""
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"


def data_path(*parts: str) -> Path:
    """Path of a shipped data file, e.g. data_path("workloads", "chat_medium.json")."""
    return DATA_DIR.joinpath(*parts)
