"""Paths of the reference data shipped inside the package (varcas/data/)."""
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"

# English prose averages about 0.75 words per BPE token (OpenAI's "100 tokens ~= 75 words"
# rule of thumb): how the shipped corpus's text prompts are sized, and how the simulator counts
# a text's tokens. A server's usage field reports the true count.
WORDS_PER_TOKEN = 0.75


def data_path(*parts: str) -> Path:
    """Path of a shipped data file, e.g. data_path("workloads", "chat_medium.json")."""
    return DATA_DIR.joinpath(*parts)
