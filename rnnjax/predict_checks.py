"""The checks scripts/predict.py makes before any work, and its messages.

The paths (`check_paths`), the figure's format (`check_plot`), a finished run
(`check_finished`), the significant digits written (`check_digits`, `DIGITS`), and how --csv is
read: as the run read its training data (`reading_settings`), with `sources.load_csv`'s advice
in predict.py's flags (`for_predict`).
"""
from __future__ import annotations

import logging
import os
import re

from rnnjax import config as config_lib
from rnnjax import trained_run
from rnnjax.errors import UserError


# Significant digits of the numbers in a forecast file: float32 forecasts carry about 7.
DIGITS = 6


def _same_file(path: str, other: str) -> bool:
  """`path` and `other` name one file, by any spelling or link (neither needs to exist)."""
  return os.path.realpath(path) == os.path.realpath(other) or (
      os.path.exists(path) and os.path.exists(other) and os.path.samefile(path, other))


def _inside(path: str, folder: str) -> bool:
  """`path` is `folder` or lies under it, its links resolved; a link inside `folder` counts
  too, wherever it points, since writing `path` would replace the link."""
  top = os.path.realpath(folder)
  parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
  return any(os.path.commonpath([top, where]) == top for where in (
      os.path.realpath(path), os.path.join(parent, os.path.basename(path))))


def check_paths(csv_path: str, out_path: str, flag: str = '--out',
                workdir: str | None = None) -> None:
  """Refuses paths scripts/predict.py cannot use, before any work.

  Raises:
    UserError: `csv_path` is not a file; `out_path` (given as `flag`) lies inside `workdir`
      (the run's own files), is a folder, lies in a folder that does not exist or cannot be
      written, or is `csv_path` itself (by any spelling or link).
  """
  if not os.path.isfile(csv_path):
    raise UserError(f'--csv={csv_path!r} does not exist or is not a file.')
  if workdir is not None and _inside(out_path, workdir):
    top = os.path.realpath(workdir)
    example = 'forecast' + ((os.path.splitext(out_path)[1] or '.png') if flag == '--plot'
                            else '.csv')
    raise UserError(f'{flag}={out_path!r} lies inside the run\'s --workdir={workdir!r}, which '
                    'holds the run\'s own files (config.json, metrics.json, history.csv, '
                    'checkpoints/): writing there can replace them. Name a file outside the '
                    f'workdir, e.g. {flag}='
                    f'{os.path.join(os.path.dirname(top), os.path.basename(top) + "_" + example)}.')
  if os.path.isdir(out_path):
    raise UserError(f'{flag}={out_path!r} is a folder; name a file to write, e.g. '
                    f'{flag}={os.path.join(out_path, "forecast.csv")}.')
  folder = os.path.dirname(os.path.abspath(out_path))
  if not os.path.isdir(folder):
    raise UserError(f'{flag}={out_path!r}: the folder {folder!r} does not exist; create it first '
                    f'(mkdir -p {folder}) or name a file in an existing folder.')
  if not os.access(folder, os.W_OK | os.X_OK):
    raise UserError(f'{flag}={out_path!r} cannot be written: the folder {folder!r} is not '
                    'writable.')
  if _same_file(out_path, csv_path):
    raise UserError(f'{flag}={out_path!r} is the input --csv={csv_path!r}: writing it would '
                    f'overwrite the series. Name another file for {flag}.')


def check_plot(plot_path: str, out_path: str) -> None:
  """Refuses a --plot that matplotlib cannot write or that is the --out file, before any work.

  The format is the file's extension, as matplotlib's `savefig` reads it (none: its default,
  PNG); the formats are the ones matplotlib's canvas says it supports.

  Raises:
    UserError: an extension matplotlib cannot write, or `plot_path` names the `out_path` file
      (by any spelling or link).
  """
  from matplotlib.backend_bases import FigureCanvasBase  # pylint: disable=import-outside-toplevel
  supported = FigureCanvasBase.get_supported_filetypes()
  root, extension = os.path.splitext(plot_path)
  if extension[1:] and extension[1:].lower() not in supported:
    raise UserError(f'--plot={plot_path!r}: matplotlib cannot write {extension[1:]!r} figures; '
                    f'it writes {", ".join(sorted(supported))}. End the file name with one of '
                    f'these, e.g. --plot={root}.png.')
  if _same_file(plot_path, out_path):
    raise UserError(f'--plot={plot_path!r} is the --out={out_path!r} file: the figure would '
                    f'replace the forecast. Name another file for --plot, e.g. '
                    f'--plot={os.path.splitext(out_path)[0]}_plot.png.')


def check_finished(run: trained_run.TrainedRun, workdir: str, allow_unfinished: bool) -> None:
  """Refuses a run that has not finished, or with `allow_unfinished` warns about it.

  Raises:
    UserError: `run.finished` is False and `allow_unfinished` is not set.
  """
  if run.finished:
    return
  state = (f'{workdir!r} holds an unfinished run: its newest usable checkpoint has '
           f'{run.epochs_done} of {run.config.train.epochs} epochs and there is no metrics.json '
           '(the run was stopped, diverged, or is still training)')
  if not allow_unfinished:
    raise UserError(f'{state}. Run the same scripts/train.py command again to resume it, or pass '
                    '--allow_unfinished to forecast with this checkpoint.')
  logging.warning('%s; forecasting with it (--allow_unfinished).', state)


def reading_settings(config) -> dict:
  """How the run read its training CSV (time unit, date order, fill share): --csv is read the
  same way. Runs recorded before a key existed read with its default."""
  d = config.data
  return dict(time_unit=d.get('time_unit', ''), dayfirst=d.get('dayfirst', ''),
              max_fill_fraction=d.get('max_fill_fraction', config_lib.MAX_FILL_FRACTION))


_READING_FLAG = re.compile(r"--config\.data\.(time_unit|dayfirst|max_fill_fraction)=('[^']*'|[\w.]*\w)")


def for_predict(message: str, columns: list) -> str:
  """A `sources.load_csv` error with its advice in scripts/predict.py's flags."""
  message, settings = _READING_FLAG.subn(r'data.\1=\2', message)
  if settings:
    message += (' predict.py reads --csv with the settings the run was trained with (data.'
                'time_unit, data.dayfirst, data.max_fill_fraction in the workdir\'s config.json): '
                'write the file as the training data was written, or forecast with a run '
                'trained with the setting named above.')
  for config_words, predict_words in (
      ('--config.data.fill', '--fill'), ('data.fill', '--fill'), ('data.path', '--csv'),
      ('Set data.time_column, data.target, data.features, data.future_features and '
       'data.id_column to existing names.', f'The run needs the columns {list(columns)}.'),
      ('Choose other columns or fix the file.', 'Fix the file.')):
    message = message.replace(config_words, predict_words)
  return message


def check_digits(digits: int, flag: str = '--digits') -> None:
  """Raises UserError unless 1 <= digits <= 17 (17 writes every float64 exactly)."""
  if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
    raise UserError(f'{flag}={digits!r}: give the significant digits of each number written, a '
                    f'whole number from 1 to 17 (default {DIGITS}; 17 writes every value '
                    'exactly).')
