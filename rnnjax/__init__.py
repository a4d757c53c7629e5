"""rnnjax: recurrent time-series forecasting in JAX/Flax. See README.md."""
import os

# XLA:CPU's multi-threaded Eigen pool can deadlock executing vmapped programs (an ensemble of
# 8 tutorial models hung every time on a 2-core machine; jax 0.10.2). Single-threaded Eigen
# avoids it at no measurable cost for these small matrices. It only affects the CPU backend,
# and only if set before JAX creates it; a flag the user set is left alone.
_FLAG = '--xla_cpu_multi_thread_eigen'
if _FLAG not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + f' {_FLAG}=false').strip()
