"""Forecasts a new series with a trained workdir: one row per complete input window.

  python scripts/predict.py --workdir runs/seed_gru --csv new_series.csv --out forecast.csv

The CSV needs the run's time column and value columns (see config.json in the workdir).
Output columns: input_end, target_time, forecast (original units), actual; ensembles add
forecast_std and the quantile band; --member=K forecasts with one member. The work is in `rnnjax.forecast`, tested there.
"""
from absl import app, flags, logging

from rnnjax import compile_cache, errors, forecast

flags.DEFINE_string('workdir', None, 'A workdir written by scripts/train.py.')
flags.DEFINE_string('csv', None, 'CSV file with the series to forecast.')
flags.DEFINE_string('out', None, 'CSV file to write.')
flags.DEFINE_integer('member', None, 'Ensemble workdirs: forecast with this member alone.')
flags.mark_flags_as_required(['workdir', 'csv', 'out'])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  compile_cache.enable()
  frame = errors.exit_on_user_error(
      lambda: forecast.forecast_csv(FLAGS.workdir, FLAGS.csv, FLAGS.out, FLAGS.member))
  print(f'wrote {len(frame)} forecasts to {FLAGS.out}')


if __name__ == '__main__':
  app.run(main, flags_parser=errors.parse_flags_or_exit)
