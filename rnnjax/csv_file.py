"""A CSV file read as pandas reads it, in bounded memory: its header checked (each column named
once), every way it can fail to read said as a UserError, and its rows parsed chunk by chunk
with text columns kept as categoricals (`read_csv`), each given back as pandas reads it
(`expanded`) when one series' rows are cleaned (`rnnjax.sources`).
"""
from __future__ import annotations

import os

import pandas as pd

from rnnjax import host_memory
from rnnjax.errors import UserError


# Rows parsed at a time by `read_csv`; each chunk's text columns become categoricals before the
# next is read, so that the ids and timestamps a long-format panel repeats are held once each.
CSV_CHUNK_ROWS = 2**18


def read_csv(path: str, **kwargs) -> pd.DataFrame:
  """`pd.read_csv(path, **kwargs)` of a file with a header that names each column once, its text
  columns as categoricals.

  The file is parsed CSV_CHUNK_ROWS rows at a time, and the text columns of each chunk (series
  ids, timestamps, a value column with a word in it) are kept as categoricals: a panel of
  millions of rows then holds 1-4 bytes a row per text column instead of a string object per
  cell. `expanded` gives a column back as pandas reads it.

  Raises:
    UserError: naming the path and why it cannot be read (no such file, a directory, no
      permission, empty, not UTF-8 text, not CSV), or the names its header repeats (pandas
      would rename the second 'x' to 'x.1').
  """
  if not path:
    raise UserError('data.source is "csv" but data.path is empty: pass --config.data.path=FILE.')
  if os.path.isdir(path):
    raise UserError(f'data.path={path!r} is a directory, not a file: name the CSV file in it.')
  if not os.path.isfile(path):
    raise UserError(f'data.path={path!r} does not exist or is not a file.')
  try:
    header = pd.read_csv(path, header=None, nrows=1, dtype=str).iloc[0]
    frame = _read_chunks(path, **kwargs)
  except OSError as e:  # no permission, a file that vanished, a read error of the disk
    raise UserError(f'could not read {path!r}: {e.strerror or e}.') from None
  except pd.errors.EmptyDataError:
    raise UserError(f'{path!r} is empty: a CSV file needs a header row naming its columns, then '
                    'one row per timestamp.') from None
  except UnicodeDecodeError as e:
    raise UserError(f'could not read {path!r} as CSV: it is not UTF-8 text (byte '
                    f'0x{e.object[e.start]:02x} cannot be decoded). Is it a binary or compressed '
                    'file, or text in another encoding? Save it as a UTF-8 CSV file.') from None
  except pd.errors.ParserError as e:
    raise UserError(f'could not read {path!r} as CSV: {" ".join(str(e).split())}.') from None
  names = header.dropna()
  repeated = list(dict.fromkeys(names[names.duplicated()]))
  if repeated:
    raise UserError(f'the header of {path!r} names {repeated} more than once; pandas would '
                    f'read the second {repeated[0]!r} as {repeated[0] + ".1"!r}. Give each '
                    'column its own name.')
  return frame


def _read_chunks(path: str, **kwargs) -> pd.DataFrame:
  """`read_csv`'s parse: chunk by chunk, text columns as categoricals, then joined."""
  pieces = []
  with pd.read_csv(path, chunksize=CSV_CHUNK_ROWS, **kwargs) as reader:
    for chunk in reader:
      pieces.append(chunk.apply(
          lambda c: c.astype('category') if _is_text(c.dtype) else c))
  if not pieces:  # a header and no rows
    return pd.read_csv(path, **kwargs)
  columns = {}
  for name in pieces[0].columns:
    parts = [piece[name] for piece in pieces]
    if all(isinstance(p.dtype, pd.CategoricalDtype) for p in parts):
      columns[name] = pd.Series(pd.api.types.union_categoricals(parts), name=name)
    else:  # text in some chunks, numbers in others: as pandas joins its own chunks
      columns[name] = pd.concat([expanded(p) for p in parts], ignore_index=True)
  del pieces, parts
  frame = pd.DataFrame(columns)
  host_memory.release_freed()  # the chunks' text, parsed and dropped
  return frame


def _is_text(dtype) -> bool:
  return dtype == object or isinstance(dtype, pd.StringDtype)


def expanded(column: pd.Series) -> pd.Series:
  """A column of `read_csv`'s frame as `pd.read_csv` reads it: a categorical one back in its
  values' dtype (text), any other as it is."""
  if isinstance(column.dtype, pd.CategoricalDtype):
    return column.astype(column.cat.categories.dtype)
  return column
