"""Dataset files as `vllm bench serve` reads them, streamed with bounded memory.

  ShareGPT  a JSON array of {"id", "conversations": [{"from", "value"}, ...]}; an entry with no
            "conversations" or fewer than two turns is skipped (vLLM's filter); what is kept is
            the first two turns' texts (vLLM's prompt and reference answer), not the whole file.
  custom    JSON Lines, one {"prompt": text, "output_tokens": n} per line (vLLM's CustomDataset;
            output_tokens is read only when the run takes its output lengths from the file).
  BurstGPT  CSV with the header Timestamp,Model,Request tokens,Response tokens,Total tokens,Log
            Type; vLLM keeps the rows of Model "GPT-4" whose Response tokens > 0 (failed requests
            have 0); varcas also drops rows of 0 Request tokens (an empty prompt cannot be sent).
  sonnet    a text file, one poem line per line (vLLM's sonnet.txt); blank lines are skipped.

Each file is at most MAX_DATASET_BYTES: beyond, it is refused before it is read. A row that
cannot be what its format says (invalid JSON, a turn without a text value, a non-integer token
count) is a one-line VarcasError naming the file and the line it starts on; rows that only fail
vLLM's filters are skipped, as vLLM skips them.
"""
from __future__ import annotations

import csv
import json
from array import array
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
import orjson

from ..errors import VarcasError

MAX_DATASET_BYTES = 1 << 30  # ShareGPT_V3_unfiltered_cleaned_split.json is 642 MB
_CHUNK = 1 << 20
_MAX_ITEM = 64 << 20  # one ShareGPT entry; a larger one is a broken file
_DECODER = json.JSONDecoder()
BURSTGPT_COLUMNS = ("Timestamp", "Model", "Request tokens", "Response tokens")
BURSTGPT_MODEL = "GPT-4"  # vLLM's BurstGPTDataset keeps only this model's rows


def open_dataset(path: str | Path, what: str) -> IO[str]:
    """The file opened as UTF-8 text, after checking that it exists and is not too large."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_DATASET_BYTES:
            raise VarcasError(f"{what} file {path}: {size >> 20} MiB, more than the {MAX_DATASET_BYTES >> 20} MiB "
                              "varcas reads; cut it down")
        return path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise VarcasError(f"{what} file {path}: no such file") from None
    except OSError as exc:
        raise VarcasError(f"{what} file {path}: cannot read ({exc.strerror})") from None


def _reading(path: Path, what: str, rows: Iterator) -> list:
    """Every row of a reader, with read and decode failures as one-line errors."""
    try:
        return list(rows)
    except UnicodeDecodeError as exc:
        raise VarcasError(f"{what} file {path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise VarcasError(f"{what} file {path}: cannot read ({exc.strerror})") from None


def read_sharegpt(path: str | Path) -> list[tuple[str, str]]:
    """(first turn, second turn) texts of every entry with at least two turns, in file order."""
    path = Path(path)
    with open_dataset(path, "ShareGPT") as f:
        return _reading(path, "ShareGPT", _sharegpt_pairs(_json_array(f, path, "ShareGPT"), path))


def _sharegpt_pairs(items: Iterator[tuple[int, Any]], path: Path) -> Iterator[tuple[str, str]]:
    for line, entry in items:
        if not isinstance(entry, dict):
            raise VarcasError(f"ShareGPT file {path} line {line}: an entry must be a JSON object")
        turns = entry.get("conversations")
        if turns is None or isinstance(turns, list) and len(turns) < 2:
            continue  # vLLM's filter: nothing to prompt with and answer
        if not isinstance(turns, list):
            raise VarcasError(f"ShareGPT file {path} line {line}: \"conversations\" must be a list")
        prompt, answer = (t.get("value") if isinstance(t, dict) else None for t in turns[:2])
        if not isinstance(prompt, str) or not isinstance(answer, str):
            raise VarcasError(f"ShareGPT file {path} line {line}: the first two turns need a text \"value\"")
        yield prompt, answer


def _json_array(f: IO[str], path: Path, what: str) -> Iterator[tuple[int, Any]]:
    """(line where it starts, item) of each item of the top-level JSON array in f, decoded one
    item at a time from a window of the file (memory: the largest item, not the file)."""
    buf, pos, line, eof = "", 0, 1, False

    def fill(size: int = _CHUNK) -> bool:
        nonlocal buf, pos, eof
        more = f.read(size)
        eof = not more
        buf, pos = buf[pos:] + more, 0
        return not eof

    def skip_space() -> str:
        nonlocal pos, line
        while True:
            end = pos
            while end < len(buf) and buf[end] in " \t\r\n":
                end += 1
            line += buf.count("\n", pos, end)
            pos = end
            if pos < len(buf) or not fill():
                return buf[pos] if pos < len(buf) else ""

    if skip_space() != "[":
        raise VarcasError(f"{what} file {path} line {line}: expected a JSON array of entries")
    pos += 1
    if skip_space() == "]":
        return
    while True:
        want = _CHUNK
        while True:
            try:
                item, end = _DECODER.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                # an error at the window's end, or in a string it cuts, may only be the cut
                cut = exc.pos >= len(buf) - 16 or exc.msg.startswith("Unterminated string")
                if eof or not cut or len(buf) - pos > _MAX_ITEM:
                    where = line - buf.count("\n", 0, pos) + exc.lineno - 1  # exc counts from the window's start
                    raise VarcasError(f"{what} file {path} line {where}: invalid JSON ({exc.msg})") from None
                fill(want)  # read on (doubling, so a long entry costs linear time) and decode it again
                want *= 2
        yield line, item
        line += buf.count("\n", pos, end)
        pos = end
        sep = skip_space()
        if sep == "]":
            return
        if sep != ",":
            raise VarcasError(f"{what} file {path} line {line}: expected ',' or ']' between entries")
        pos += 1
        skip_space()


def read_custom(path: str | Path, need_output: bool) -> list[tuple[str, int]]:
    """(prompt, output_tokens) of every line of a custom JSONL dataset, output_tokens 0 when
    the run does not take it from the file (need_output False)."""
    path = Path(path)
    if path.suffix != ".jsonl":
        raise VarcasError(f"custom dataset {path}: vLLM's custom dataset is a .jsonl file")
    with open_dataset(path, "custom dataset") as f:
        rows = _reading(path, "custom dataset", _custom_rows(f, path, need_output))
    if not rows:
        raise VarcasError(f"custom dataset {path}: no prompts")
    return rows


def jsonl_objects(f: IO[str], what: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of every non-blank line of a JSON Lines file; invalid JSON
    is a one-line VarcasError naming `what` (e.g. "trace file P") and the line."""
    for lineno, text in enumerate(f, 1):
        if not text.strip():
            continue
        try:
            yield lineno, orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise VarcasError(f"{what} line {lineno}: invalid JSON ({exc})") from None


def _custom_rows(f: IO[str], path: Path, need_output: bool) -> Iterator[tuple[str, int]]:
    for lineno, row in jsonl_objects(f, f"custom dataset {path}"):
        prompt = row.get("prompt") if isinstance(row, dict) else None
        if not isinstance(prompt, str) or not prompt:
            raise VarcasError(f"custom dataset {path} line {lineno}: needs a non-empty \"prompt\" string")
        out = row.get("output_tokens") if need_output else 0
        if need_output and not _token_count(out):
            raise VarcasError(f"custom dataset {path} line {lineno}: \"output_tokens\" must be an integer >= 1 "
                              f"(or give --custom-output-len), got {out!r}")
        yield prompt, out


def _token_count(value: Any) -> bool:
    return type(value) is int and 1 <= value < 1 << 31


def read_burstgpt(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Timestamp s float64, Request tokens int32, Response tokens int32) of the rows vLLM keeps,
    in file order."""
    path = Path(path)
    times, inputs, outputs = array("d"), array("i"), array("i")
    with open_dataset(path, "BurstGPT") as f:
        for t, inp, out in _reading(path, "BurstGPT", _burstgpt_rows(f, path)):
            times.append(t)
            inputs.append(inp)
            outputs.append(out)
    if not times:
        raise VarcasError(f"BurstGPT file {path}: no {BURSTGPT_MODEL} rows with request and response tokens")
    return np.frombuffer(times, np.float64), np.frombuffer(inputs, np.int32), np.frombuffer(outputs, np.int32)


def csv_columns(f: IO[str], what: str, need: tuple[str, ...]) -> tuple[list[int], Iterator[tuple[int, list[str]]]]:
    """The column index of each name in `need` from a CSV's header (its first non-blank row), and
    its later non-blank rows as (line number, cells); a header without them, or a row shorter
    than the header, is a one-line VarcasError naming `what` and the line."""
    reader = csv.reader(f)
    header = next((row for row in reader if any(c.strip() for c in row)), [])
    names = [c.strip() for c in header]
    missing = [k for k in need if k not in names]
    if missing:
        raise VarcasError(f"{what} line {reader.line_num or 1}: header lacks {', '.join(missing)} "
                          f"(need {','.join(need)})")

    def rows() -> Iterator[tuple[int, list[str]]]:
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if len(row) < len(names):
                raise VarcasError(f"{what} line {reader.line_num}: {len(row)} columns, the header has {len(names)}")
            yield reader.line_num, row

    return [names.index(k) for k in need], rows()


def _burstgpt_rows(f: IO[str], path: Path) -> Iterator[tuple[float, int, int]]:
    (ts, model, req, resp), rows = csv_columns(f, f"BurstGPT file {path}", BURSTGPT_COLUMNS)
    for line, row in rows:
        try:
            t, n_in, n_out = float(row[ts]), int(row[req]), int(row[resp])
        except ValueError:
            raise VarcasError(f"BurstGPT file {path} line {line}: Timestamp must be a number and "
                              f"the token counts integers, got {row[ts]!r}, {row[req]!r}, {row[resp]!r}") from None
        if not 0 <= t < 1e9 or n_in < 0 or n_out < 0 or max(n_in, n_out) >= 1 << 31:
            raise VarcasError(f"BurstGPT file {path} line {line}: Timestamp and token counts "
                              f"must be >= 0, got {row[ts]!r}, {row[req]!r}, {row[resp]!r}")
        if row[model].strip() == BURSTGPT_MODEL and n_out > 0 and n_in > 0:
            yield t, n_in, n_out


def read_lines(path: str | Path) -> list[str]:
    """The non-blank lines of a text file, each with its line end (vLLM's readlines())."""
    path = Path(path)
    with open_dataset(path, "sonnet") as f:
        lines = [line for line in _reading(path, "sonnet", iter(f)) if line.strip()]
    if not lines:
        raise VarcasError(f"sonnet file {path}: no lines")
    return lines
