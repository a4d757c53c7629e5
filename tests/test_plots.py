"""`rnnjax.plots`: what the figures say (titles, axes, which points), read off the matplotlib
figure before it is written, on hand-made forecasts: no training."""
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest

from rnnjax import forecast, plots

HOURS = pd.date_range('2025-03-01 00:00', periods=200, freq='h')


@pytest.fixture
def drawn(monkeypatch):
  """The figures the plots draw, instead of writing them."""
  figures = []

  def keep(fig, path):
    del path
    figures.append(fig)
  monkeypatch.setattr(plots, '_save', keep)
  yield figures
  for fig in figures:
    plots.pyplot().close(fig)


def _frame(steps, interval=False):
  """forecast_frame's rows for windows of 24 hours over HOURS, each forecast 1 above the value;
  targets past HOURS forecast but not observed."""
  rows = []
  for end in range(23, len(HOURS)):
    for step in steps:
      target = end + step
      rows.append({'input_end': HOURS[end], 'step': step,
                   'target_time': HOURS[0] + pd.Timedelta(hours=target),
                   'forecast': float(target) + 1.0,
                   'actual': float(target) if target < len(HOURS) else np.nan})
  frame = pd.DataFrame(rows)
  if interval:
    frame['lower'], frame['upper'] = frame['forecast'] - 0.5, frame['forecast'] + 2.0
  return frame


def test_the_forecast_past_the_data_is_each_later_time_once_from_the_latest_window():
  single = plots.past_the_data(_frame([3]))
  assert list(single['target_time']) == list(HOURS[-1] + pd.to_timedelta([1, 2, 3], 'h'))
  assert list(single['input_end']) == list(HOURS[-3:]), (
      'a single-step run reaches each time past the data from one of its last windows')
  multi = plots.past_the_data(_frame([1, 2, 3]))
  assert list(multi['step']) == [1, 2, 3] and (multi['input_end'] == HOURS[-1]).all(), (
      f'a multi-step run\'s future is its last window\'s every step:\n{multi}')


def test_a_single_step_forecast_past_the_data_is_a_large_marker_with_its_interval(drawn):
  frame = _frame([1], interval=True)
  plots.plot_forecast(frame, 'unused.png', forecast.plot_title('/runs/seed_gru/', 'temperature'),
                      interval=0.8, ylabel='temperature')
  fig, = drawn
  assert fig._suptitle.get_text() == "Forecast of temperature by the run 'seed_gru'"
  overview, zoom = fig.axes
  for ax in (overview, zoom):
    assert (ax.get_xlabel(), ax.get_ylabel()) == ('Target time', 'temperature')
    assert isinstance(ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
    marker, = [line for line in ax.get_lines() if line.get_marker() == 'o']
    times = pd.to_datetime(np.asarray(marker.get_xdata()))
    assert list(times) == [HOURS[-1] + pd.Timedelta('1h')], f'drawn past the data at {times}'
    assert marker.get_markersize() >= 8, 'one step past the data must stand out'
    bars, = [c for c in ax.containers if c.has_yerr]
    low, high = bars.lines[2][0].get_segments()[0][:, 1]
    assert (low, high) == (pytest.approx(200.5), pytest.approx(203.0)), (
        f'the error bar should span lower..upper of the forecast past the data: {low}..{high}')
  assert 'The end: the last 48 observed' in zoom.get_title(), zoom.get_title()


def test_the_plot_title_names_the_run_by_its_folder_and_the_series():
  assert forecast.plot_title('/a/b/panel_run', 'load', 'north') == (
      "Forecast of load of series 'north' by the run 'panel_run'")
  assert forecast.plot_title('rel', '') == "Forecast of value by the run 'rel'"


def test_prediction_panels_draw_against_the_target_time_and_say_which_targets(drawn):
  n_train, n_val = 700, 300
  values = np.sin(np.arange(n_train + n_val) / 4.0)
  times = pd.date_range('2025-01-01', periods=n_train + n_val, freq='h')
  panels = {'train': (values[:n_train], values[:n_train] + 0.1, None),
            'val': (values[n_train:], values[n_train:] + 0.1, None),
            'times': {'train': times[:n_train], 'val': times[n_train:]},
            'xlabel': 'Target time', 'ylabel': 'temperature', 'label': ''}
  plots.plot_predictions(panels, 'unused.png', last=500)
  fig, = drawn
  train, val = fig.axes
  assert train.get_title() == ('Training: the last 500 of 700 targets, 2025-01-09 08:00 to '
                               '2025-01-30 03:00'), train.get_title()
  assert val.get_title().startswith('Validation: all 300 targets'), val.get_title()
  observed = train.get_lines()[0]
  assert pd.Timestamp(np.asarray(observed.get_xdata())[0]) == times[200], (
      'the training panel should start at the target time of the 500th target from the end')
  for ax in (train, val):
    assert (ax.get_xlabel(), ax.get_ylabel()) == ('Target time', 'temperature')
