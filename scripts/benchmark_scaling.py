"""The scaling sections of scripts/benchmark.py: one model over a large panel, and one model's
minibatches split over devices.

  panel         a synthetic panel of 10, 100 and 1,000 hourly series of a year each, one model
                (GRU 24/50/24, batch 32) with train.steps_per_epoch and train.val_windows
                fixed: seconds per epoch against the number of series (the work per epoch is
                the same, so the cost should be); then the peak resident memory of a fresh
                process that builds such a panel of 1,000 series and trains it one epoch, at two
                series lengths, and the bytes each extra point costs (the slope).
  dataparallel  the same model on the tutorial's task made long enough, one epoch of
                --dp_steps steps at batch sizes --dp_batches on 1, 2, 4, ... devices
                (`rnnjax.program.data_program` over the first n devices): windows per second,
                the ratio to one device at the same batch size, and the cores the process kept
                busy (CPU seconds per second: XLA:CPU runs one device's independent
                operations on several cores, so on a CPU one device is not one core).
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import jax
import numpy as np
import pandas as pd
from jax.sharding import Mesh

from rnnjax import config as config_lib
from rnnjax import data as data_lib
from rnnjax import devices
from rnnjax import host_memory
from rnnjax import program as program_lib
from rnnjax import train
from rnnjax.sources import Series

HOURS_PER_YEAR = 8760


def synthetic_panel(num_series: int, length: int, seed: int = 0) -> list[Series]:
  """`num_series` hourly series of `length` points: a daily cycle of its own amplitude and
  phase, a level and noise."""
  rng = np.random.default_rng(seed)
  times = pd.date_range('2024-01-01', periods=length, freq='h')
  hour_T = np.arange(length, dtype=np.float64)
  series = []
  for r in range(num_series):
    amplitude, phase, level = rng.uniform(1, 10), rng.uniform(0, 2 * np.pi), rng.normal(0, 20)
    values_T = (level + amplitude * np.sin(2 * np.pi * hour_T / 24 + phase)
                + rng.normal(0, 0.5, length))
    series.append(Series(f's{r}', times, values_T[:, None], pd.DataFrame()))
  return series


def panel_config(steps_per_epoch: int, val_windows: int, **overrides):
  """The tutorial's model and batch on a panel, drawn epochs of `steps_per_epoch` steps and a
  validation subset of `val_windows` windows."""
  config = config_lib.default_config()
  config.data.source = 'csv'  # the panel is built in memory; the key only names its kind
  config.data.id_column = 'series'
  config.train.steps_per_epoch = steps_per_epoch
  config.train.val_windows = val_windows
  return config_lib.override(config, overrides)


def panel_dataset(config, num_series: int, length: int):
  return data_lib.assemble(config.data, synthetic_panel(num_series, length),
                           data_lib.input_columns(config.data))


def panel_rows(series_counts, steps_per_epoch: int, val_windows: int, repeats: int):
  """Seconds per epoch of one model against the panel's number of series; the panels take
  turns, one epoch each per round, so a noisy machine slows all of them alike."""
  rows, programs, states = [], [], []
  for num_series in series_counts:
    config = panel_config(steps_per_epoch, val_windows)
    start = time.perf_counter()
    data = panel_dataset(config, num_series, HOURS_PER_YEAR)
    prepare = time.perf_counter() - start
    program = program_lib.single_program(train.make_trainer(config, data), config)
    start = time.perf_counter()
    state, history = program.run(program.init(), 1)
    jax.block_until_ready(history)
    rows.append({'series': num_series, 'points': len(data.scaled_TF),
                 'train_windows': len(data.train_starts), 'steps_per_epoch': steps_per_epoch,
                 'val_windows': val_windows, 'prepare_seconds': prepare,
                 'compile_and_first_epoch_seconds': time.perf_counter() - start})
    programs.append(program)
    states.append(state)
  times = [[] for _ in rows]
  for _ in range(repeats):
    for i, program in enumerate(programs):
      start = time.perf_counter()
      states[i], history = program.run(states[i], 1)
      jax.block_until_ready(history)
      times[i].append(time.perf_counter() - start)
  for row, seconds in zip(rows, times, strict=True):
    row['seconds_per_epoch'] = float(np.median(seconds))
    row['epoch_cost_vs_fewest_series'] = row['seconds_per_epoch'] / float(np.median(times[0]))
  return rows


def peak_rss_bytes() -> int:
  """This process's peak resident memory since it started its program: Linux's VmHWM, which
  begins anew at exec (getrusage's ru_maxrss keeps the high-water mark of the process that
  forked it, here the benchmark holding the largest panel)."""
  peak = host_memory.proc_kib_field('/proc/self/status', 'VmHWM')
  if peak is None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  return peak


def panel_memory_child(num_series: int, length: int, steps_per_epoch: int,
                       val_windows: int) -> dict:
  """Builds a panel and trains one model one epoch; the process's peak resident memory."""
  config = panel_config(steps_per_epoch, val_windows)
  data = panel_dataset(config, num_series, length)
  trainer = train.make_trainer(config, data)
  program = program_lib.single_program(trainer, config)
  state, history = program.run(program.init(), 1)
  jax.block_until_ready(history)
  return {'series': num_series, 'length': length, 'points': len(data.scaled_TF),
          'peak_rss_bytes': peak_rss_bytes(),
          'loss': float(np.asarray(history['loss'])[-1])}


def panel_memory_rows(script: str, num_series: int, lengths, steps_per_epoch: int,
                      val_windows: int):
  """`panel_memory_child` in a fresh process per length, then the slope: bytes per point."""
  rows = []
  for length in lengths:
    proc = subprocess.run([sys.executable, script, f'--panel_child={num_series},{length}',
                           f'--panel_steps={steps_per_epoch}',
                           f'--panel_val_windows={val_windows}'],
                          capture_output=True, text=True, check=True)
    rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
  slope = (rows[-1]['peak_rss_bytes'] - rows[0]['peak_rss_bytes']) / (
      rows[-1]['points'] - rows[0]['points'])
  rows.append({'series': num_series, 'bytes_per_extra_point': slope,
               'peak_rss_bytes_per_point_at_longest': rows[-2]['peak_rss_bytes']
                                                      / rows[-2]['points']})
  return rows


def cpu_seconds() -> float:
  """CPU seconds this process has used, on every thread."""
  t = os.times()
  return t.user + t.system


def data_parallel_rows(batches, steps: int, repeats: int, hidden_sizes=()):
  """Windows per second of one model at each batch size on 1, 2, 4, ... devices; the device
  counts of a batch size take turns, one epoch each per round, so a noisy machine slows all
  of them alike."""
  available = jax.devices()
  counts = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= len(available)]
  overrides = {'data.synthetic.num_days': max(200, max(batches) // 15 + 10),
               'train.steps_per_epoch': steps, 'train.val_windows': 256}
  if hidden_sizes:
    overrides['model.hidden_sizes'] = tuple(hidden_sizes)
  rows = []
  for batch in batches:
    config = config_lib.override(config_lib.default_config(),
                                 {**overrides, 'train.batch_size': batch})
    data = data_lib.prepare(config.data)
    programs, states, first = {}, {}, {}
    for n in counts:
      trainer = train.make_trainer(config, data, data_shards=n)
      if n == 1:
        programs[n] = program_lib.single_program(trainer, config)
      else:
        mesh = Mesh(np.array(available[:n]).reshape(1, n), (devices.MEMBERS_AXIS,
                                                             devices.DATA_AXIS))
        programs[n] = program_lib.data_program(trainer, config, mesh)
      start = time.perf_counter()
      states[n], history = programs[n].run(programs[n].init(), 1)
      jax.block_until_ready(history)
      first[n] = time.perf_counter() - start
    times = {n: [] for n in counts}
    busy = {n: [] for n in counts}
    for _ in range(repeats):
      for n in counts:
        start, cpu_start = time.perf_counter(), cpu_seconds()
        states[n], history = programs[n].run(states[n], 1)
        jax.block_until_ready(history)
        times[n].append(time.perf_counter() - start)
        busy[n].append((cpu_seconds() - cpu_start) / times[n][-1])
    for n in counts:
      seconds = float(np.median(times[n]))
      rows.append({'batch': batch, 'devices': n, 'steps_per_epoch': steps,
                   'compile_and_first_epoch_seconds': first[n], 'seconds_per_epoch': seconds,
                   'windows_per_second': steps * batch / seconds,
                   'speedup_vs_one_device': float(np.median(times[1]) / seconds),
                   'cores_busy': float(np.median(busy[n]))})
  return rows
