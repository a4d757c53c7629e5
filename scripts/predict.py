"""Forecasts a new series with a trained workdir: every complete input window, every step.

  python scripts/predict.py --workdir runs/seed_gru --csv new_series.csv --out forecast.csv

The CSV needs the run's time column and value columns (see config.json in the workdir), and its
id column for a run on several series; --fill handles its missing values and timestamps
(default: the run's data.fill). Output, one row per window and target step: series (runs on
several series), input_end, step, target_time, forecast (original units), actual; a quantile
head adds q0.1, q0.5, q0.9 (its levels; forecast is the median), a gaussian head mean and scale
(forecast is the mean), both then lower and upper, the central model.interval interval; point
ensembles add forecast_std and the members' quantile band (a spread across seeds); --member=K
forecasts with one member, --series=ID one series, --plot=FILE.png draws one series' forecast;
numbers are written with 6 significant digits (--digits=17: every value exactly).
Future features past the end come from rows with a timestamp and an empty target. A run that
has not finished (no metrics.json) is refused unless --allow_unfinished; so are --out and --plot
inside the workdir or naming the same file, and a series at another time step than the run's
training data. The work is in `rnnjax.forecast`, tested there.
"""
from absl import app, flags, logging

from rnnjax import compile_cache, errors, forecast, predict_checks
from rnnjax.config import FILLS

flags.DEFINE_string('workdir', None, 'A workdir written by scripts/train.py.')
flags.DEFINE_string('csv', None, 'CSV file with the series to forecast.')
flags.DEFINE_string('out', None, 'CSV file to write (its folder must exist; not inside '
                    '--workdir).')
flags.DEFINE_integer('member', None, 'Ensemble workdirs: forecast with this member alone.')
flags.DEFINE_enum('fill', None, FILLS, 'Missing values and timestamps in --csv: none (an error '
                  'naming them), ffill or interpolate. Default: the run\'s data.fill.')
flags.DEFINE_string('series', None, 'Runs on several series (data.id_column): forecast only '
                    'this series of --csv.')
flags.DEFINE_string('plot', None, 'Also draw the forecast of one series (--series, else the '
                    'first) to this figure, in the format its extension names (.png, .pdf, .svg, '
                    '...): the last 500 targets at the longest lead and the forecast past the '
                    'data with its interval, the same zoomed on the end, and the RMSE by lead.')
flags.DEFINE_integer('digits', predict_checks.DIGITS, 'Significant digits of each number in '
                     '--out (17 writes every value exactly).')
flags.DEFINE_bool('allow_unfinished', False, 'Forecast with the newest checkpoint of a run that '
                  'has not finished (stopped, or still training), with a warning.')
flags.mark_flags_as_required(['workdir', 'csv', 'out'])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  compile_cache.enable()
  frame = errors.exit_on_user_error(
      lambda: forecast.forecast_csv(FLAGS.workdir, FLAGS.csv, FLAGS.out, FLAGS.member,
                                    FLAGS.fill, FLAGS.allow_unfinished, FLAGS.series,
                                    FLAGS.plot, FLAGS.digits))
  print(f'wrote {len(frame)} forecasts to {FLAGS.out}')
  errors.exit_now(0)


if __name__ == '__main__':
  app.run(main, flags_parser=errors.parse_flags_or_exit)
