"""Cells against hand-stepped NumPy, 'fused' against flax's stock cells, dropout, FLOP count."""
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import leaves_with_paths
from rnnjax import cells
from rnnjax import models

CELLS = ('gru', 'lstm', 'simple')
IMPLEMENTATIONS = ('fused', 'flax')
STOCK_NAME = {'gru': 'GRUCell', 'lstm': 'OptimizedLSTMCell', 'simple': 'SimpleCell'}
TOL = dict(rtol=1e-5, atol=1e-6)


def np_sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def np_swish(x):
  return x * np_sigmoid(x)


def _inputs(batch=4, time=6, features=2, seed=0):
  return jnp.asarray(np.random.RandomState(seed).normal(size=(batch, time, features)), jnp.float32)


# ---------------------------------------------------------------------------- shapes


def _layer_sizes(params, cell, implementation, num_layers):
  """(input fan-in, hidden size) of each recurrent layer, read off the parameter shapes."""
  gates = cells.GATES[cell]
  sizes = []
  for i in range(num_layers):
    if implementation == 'fused':
      layer = params[f'rnn_{i}']
      fan_in, width = layer['input']['kernel'].shape
      hidden, recurrent_width = layer['recurrence']['recurrent_kernel'].shape
      assert width == recurrent_width == gates * hidden, (
          f'{cell} fused layer {i}: input width {width}, recurrent {recurrent_width}, '
          f'expected {gates} x {hidden}')
    else:
      layer = params[f'{STOCK_NAME[cell]}_{i}']
      first_input = {'gru': 'ir', 'lstm': 'ii', 'simple': 'i'}[cell]
      first_recurrent = {'gru': 'hr', 'lstm': 'hi', 'simple': 'h'}[cell]
      fan_in, hidden = layer[first_input]['kernel'].shape
      assert layer[first_recurrent]['kernel'].shape == (hidden, hidden)
    sizes.append((fan_in, hidden))
  return sizes


@pytest.mark.parametrize('implementation', IMPLEMENTATIONS)
@pytest.mark.parametrize('cell', CELLS)
def test_forecaster_output_shape_and_layer_sizes(cell, implementation):
  hidden_sizes = (3, 5, 2)
  model = models.Forecaster(cell=cell, hidden_sizes=hidden_sizes, implementation=implementation)
  x = _inputs(batch=4, time=6, features=2)
  # Shapes only: tracing (eval_shape) runs the same code as a call without compiling it.
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)['params']
  out = jax.eval_shape(model.apply, {'params': params}, x)
  assert out.shape == (4, 1), f'{cell}/{implementation}: output shape {out.shape}, want (4, 1)'
  sizes = _layer_sizes(params, cell, implementation, len(hidden_sizes))
  assert sizes == [(2, 3), (3, 5), (5, 2)], (
      f'{cell}/{implementation}: (fan-in, hidden) per layer {sizes}, want [(2, 3), (3, 5), (5, 2)]')
  assert params['head']['kernel'].shape == (2, 1), (
      f'head kernel {params["head"]["kernel"].shape}, want (last hidden 2, 1)')


# ---------------------------------------------------------------------------- one hand step
# Each cell's step written out in NumPy from flax's documented equations, per gate, with swish as
# the candidate activation; flax's stock cell and the fused `Recurrence` cell must both match it.

GATE_NAMES = {'gru': 'rzn', 'lstm': 'ifgo', 'simple': 'a'}


def _random_weights(cell, F, H, seed):
  """Per-gate weights: W_i{g} [F, H], W_h{g} [H, H], b_{g} [H] (+ b_hn [H] for a GRU)."""
  rng = np.random.RandomState(seed)
  draw = lambda *shape: rng.normal(0, 0.5, size=shape).astype(np.float32)
  w = {}
  for g in GATE_NAMES[cell]:
    w[f'W_i{g}'], w[f'W_h{g}'], w[f'b_{g}'] = draw(F, H), draw(H, H), draw(H)
  if cell == 'gru':
    w['b_hn'] = draw(H)
  return w


def np_step(cell, w, carry, x):
  """One step of `cell` in NumPy. carry is h, or (c, h) for an LSTM; returns the new carry."""
  if cell == 'gru':
    h = carry
    r = np_sigmoid(x @ w['W_ir'] + w['b_r'] + h @ w['W_hr'])
    z = np_sigmoid(x @ w['W_iz'] + w['b_z'] + h @ w['W_hz'])
    n = np_swish(x @ w['W_in'] + w['b_n'] + r * (h @ w['W_hn'] + w['b_hn']))
    return (1 - z) * n + z * h
  if cell == 'lstm':
    c, h = carry
    pre = {g: x @ w[f'W_i{g}'] + h @ w[f'W_h{g}'] + w[f'b_{g}'] for g in 'ifgo'}
    c = np_sigmoid(pre['f']) * c + np_sigmoid(pre['i']) * np_swish(pre['g'])
    return c, np_sigmoid(pre['o']) * np_swish(c)
  return np_swish(x @ w['W_ia'] + w['b_a'] + carry @ w['W_ha'])


def stock_cell_params(cell, w):
  """The same weights in flax's GRUCell / OptimizedLSTMCell / SimpleCell parameter tree."""
  if cell == 'gru':
    p = {f'i{g}': {'kernel': w[f'W_i{g}'], 'bias': w[f'b_{g}']} for g in 'rzn'}
    p.update({f'h{g}': {'kernel': w[f'W_h{g}']} for g in 'rz'})
    p['hn'] = {'kernel': w['W_hn'], 'bias': w['b_hn']}
    return p
  if cell == 'lstm':
    p = {f'i{g}': {'kernel': w[f'W_i{g}']} for g in 'ifgo'}
    p.update({f'h{g}': {'kernel': w[f'W_h{g}'], 'bias': w[f'b_{g}']} for g in 'ifgo'})
    return p
  return {'i': {'kernel': w['W_ia'], 'bias': w['b_a']}, 'h': {'kernel': w['W_ha']}}


def fused_layout(cell, w):
  """(W_i [F, G*H], b_i [G*H], recurrence params) in the fused layer's gate order."""
  gates = GATE_NAMES[cell]
  W_i = np.concatenate([w[f'W_i{g}'] for g in gates], axis=1)
  b_i = np.concatenate([w[f'b_{g}'] for g in gates])
  recurrence = {'recurrent_kernel': np.concatenate([w[f'W_h{g}'] for g in gates], axis=1)}
  if cell == 'gru':
    recurrence['recurrent_bias'] = w['b_hn']
  return W_i, b_i, recurrence


STOCK_CELLS = {'gru': nn.GRUCell, 'lstm': nn.OptimizedLSTMCell, 'simple': nn.SimpleCell}


@pytest.mark.parametrize('cell', CELLS)
def test_one_step_matches_hand_computed_numpy(cell):
  F, H, B = 3, 4, 2
  w = _random_weights(cell, F, H, seed=CELLS.index(cell))
  rng = np.random.RandomState(10)
  x = rng.normal(size=(B, F)).astype(np.float32)
  h = rng.normal(size=(B, H)).astype(np.float32)
  carry = (rng.normal(size=(B, H)).astype(np.float32), h) if cell == 'lstm' else h
  want = np_step(cell, w, carry, x)

  stock = STOCK_CELLS[cell](features=H, activation_fn=nn.swish)
  stock_params = stock_cell_params(cell, w)
  _check_param_tree(stock, stock_params, carry, x)
  parts = ('c', 'h') if cell == 'lstm' else ('h',)
  got, out = stock.apply({'params': stock_params}, carry, x)
  for g, wnt, part in zip(jax.tree.leaves(got), jax.tree.leaves(want), parts, strict=True):
    np.testing.assert_allclose(g, wnt, **TOL,
                               err_msg=f'flax {STOCK_NAME[cell]} step != NumPy step ({part})')

  W_i, b_i, recurrence = fused_layout(cell, w)
  fused = cells.Recurrence(cell, H, 'swish')
  fused_params = {'recurrence': recurrence}
  xp = x @ W_i + b_i
  _check_param_tree(fused, fused_params, carry, xp)
  got, out = fused.apply({'params': fused_params}, carry, xp)
  for g, wnt, part in zip(jax.tree.leaves(got), jax.tree.leaves(want), parts, strict=True):
    np.testing.assert_allclose(g, wnt, **TOL, err_msg=f'fused {cell} Recurrence step '
                               f'(gates {"|".join(GATE_NAMES[cell])}) != NumPy step ({part})')
  np.testing.assert_array_equal(out, jax.tree.leaves(got)[-1],
                                err_msg=f'{cell} Recurrence output is not h')


@pytest.mark.parametrize('cell', CELLS)
def test_fused_layer_matches_numpy_loop_over_time(cell):
  T, B, F, H = 5, 2, 3, 4
  w = _random_weights(cell, F, H, seed=20 + CELLS.index(cell))
  x_TBF = np.random.RandomState(11).normal(size=(T, B, F)).astype(np.float32)
  zeros = np.zeros((B, H), np.float32)
  carry = (zeros, zeros) if cell == 'lstm' else zeros
  want = []
  for t in range(T):
    carry = np_step(cell, w, carry, x_TBF[t])
    want.append(carry[1] if cell == 'lstm' else carry)
  W_i, b_i, recurrence = fused_layout(cell, w)
  layer = cells.FusedRNN(cell, H, 'swish')
  params = {'input': {'kernel': W_i, 'bias': b_i}, 'recurrence': recurrence}
  _check_param_tree(layer, params, x_TBF)
  got = jax.jit(layer.apply)({'params': params}, x_TBF)
  np.testing.assert_allclose(got, np.stack(want), **TOL,
                             err_msg=f'FusedRNN ({cell}, time-major) != NumPy loop of the step')


def _check_param_tree(module, params, *args):
  """The hand-built tree must have exactly the module's own structure and shapes."""
  init = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)['params']
  want = jax.tree.map(np.shape, flax.core.unfreeze(init))
  got = jax.tree.map(np.shape, params)
  assert got == want, f'{type(module).__name__}: hand-built params {got} != module params {want}'


# ---------------------------------------------------------------------------- fused == flax


def fused_from_stock(stock_params, cell, num_layers):
  """Fused Forecaster params holding the same function as stock (implementation='flax') params."""
  out = {'head': stock_params['head']}
  for i in range(num_layers):
    p = stock_params[f'{STOCK_NAME[cell]}_{i}']
    if cell == 'gru':
      layer = {
          'input': {'kernel': np.concatenate([p[k]['kernel'] for k in ('ir', 'iz', 'in')], 1),
                    'bias': np.concatenate([p[k]['bias'] for k in ('ir', 'iz', 'in')])},
          'recurrence': {
              'recurrent_kernel': np.concatenate([p[k]['kernel'] for k in ('hr', 'hz', 'hn')], 1),
              'recurrent_bias': p['hn']['bias']}}
    elif cell == 'lstm':
      # flax puts the LSTM biases on the recurrent side, the fused cell on the input side: the
      # two are summed before the gate either way.
      layer = {
          'input': {'kernel': np.concatenate([p[f'i{g}']['kernel'] for g in 'ifgo'], 1),
                    'bias': np.concatenate([p[f'h{g}']['bias'] for g in 'ifgo'])},
          'recurrence': {
              'recurrent_kernel': np.concatenate([p[f'h{g}']['kernel'] for g in 'ifgo'], 1)}}
    else:
      layer = {'input': {'kernel': p['i']['kernel'], 'bias': p['i']['bias']},
               'recurrence': {'recurrent_kernel': p['h']['kernel']}}
    out[f'rnn_{i}'] = layer
  return out


def _param_shapes(model, x):
  """The model's parameter tree as shapes, traced without compiling its initializers."""
  return jax.eval_shape(model.init, jax.random.PRNGKey(0), x)['params']


def _randomize(params, seed):
  """Nonzero values everywhere (biases start at zero), so every mapped parameter matters."""
  leaves, tree = jax.tree.flatten(params)
  rng = np.random.RandomState(seed)
  return jax.tree.unflatten(
      tree, [rng.normal(0, 0.4, size=np.shape(l)).astype(np.float32) for l in leaves])


@pytest.mark.parametrize('cell', CELLS)
def test_fused_and_flax_implementations_compute_the_same_forecast(cell):
  hidden_sizes = (3, 4)
  x = _inputs(batch=5, time=7, features=2, seed=1)
  stock = models.Forecaster(cell=cell, hidden_sizes=hidden_sizes, implementation='flax')
  fused = models.Forecaster(cell=cell, hidden_sizes=hidden_sizes, implementation='fused')
  stock_params = _randomize(_param_shapes(stock, x), seed=3)
  fused_params = fused_from_stock(stock_params, cell, len(hidden_sizes))
  assert jax.tree.map(np.shape, fused_params) == jax.tree.map(np.shape, _param_shapes(fused, x)), (
      f'{cell}: mapped params do not have the fused tree structure')
  want, got = jax.jit(lambda sp, fp, x: (stock.apply({'params': sp}, x),
                                         fused.apply({'params': fp}, x)))(
      stock_params, fused_params, x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5,
                             err_msg=f'{cell}: fused Forecaster != flax Forecaster, same weights')


@pytest.mark.parametrize('cell', CELLS)
def test_fused_layer_gradients_match_flax_layer(cell):
  # The fused layer has its own backward pass (a custom VJP); a loss on every step's output
  # sends a gradient into each step. Concatenating per-gate parameters is linear, so the stock
  # layer's gradients map to the fused layout the same way the parameters do.
  T, B, F, H = 6, 3, 2, 4
  rng = np.random.RandomState(30 + CELLS.index(cell))
  x_BTF = jnp.asarray(rng.normal(size=(B, T, F)), jnp.float32)
  v_BTH = jnp.asarray(rng.normal(size=(B, T, H)), jnp.float32)
  stock = nn.RNN(cells.stock_cell(cell, H, 'swish'))
  fused = cells.FusedRNN(cell, H, 'swish')
  stock_params = _randomize(jax.eval_shape(stock.init, jax.random.PRNGKey(0), x_BTF)['params'],
                            seed=7)
  fused_params = fused_from_stock({f'{STOCK_NAME[cell]}_0': stock_params['cell'], 'head': {}},
                                  cell, 1)['rnn_0']

  def losses(sp, fp, x):
    stock_loss = lambda p, x: jnp.sum(stock.apply({'params': p}, x) * v_BTH)
    fused_loss = lambda p, x: jnp.sum(
        jnp.swapaxes(fused.apply({'params': p}, jnp.swapaxes(x, 0, 1)), 0, 1) * v_BTH)
    return (jax.value_and_grad(stock_loss, argnums=(0, 1))(sp, x),
            jax.value_and_grad(fused_loss, argnums=(0, 1))(fp, x))

  (stock_value, stock_grads), (fused_value, fused_grads) = jax.jit(losses)(
      stock_params, fused_params, x_BTF)
  np.testing.assert_allclose(fused_value, stock_value, rtol=1e-5,
                             err_msg=f'{cell}: fused layer output != flax nn.RNN layer output')
  want = fused_from_stock({f'{STOCK_NAME[cell]}_0': stock_grads[0]['cell'], 'head': {}},
                          cell, 1)['rnn_0']
  for (path, g), (_, w) in zip(leaves_with_paths(fused_grads[0]), leaves_with_paths(want),
                               strict=True):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5,
                               err_msg=f'{cell}: fused layer gradient {path} != flax gradient')
  np.testing.assert_allclose(fused_grads[1], stock_grads[1], rtol=1e-4, atol=1e-5,
                             err_msg=f'{cell}: fused layer input gradient != flax gradient')


def test_fused_lstm_starts_with_forget_bias_one():
  model = models.Forecaster(cell='lstm', hidden_sizes=(3,))
  x = _inputs(features=1)
  params = jax.jit(model.init)(jax.random.PRNGKey(0), x)['params']
  assert np.isfinite(np.asarray(jax.jit(model.apply)({'params': params}, x))).all(), (
      'a freshly initialised LSTM forecaster gives non-finite forecasts')
  np.testing.assert_array_equal(params['rnn_0']['input']['bias'],
                                [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0],
                                err_msg='fused LSTM bias should be 1 on the forget gate only')


# ---------------------------------------------------------------------------- dropout


@pytest.fixture(scope='module')
def dropout_model():
  model = models.Forecaster(cell='gru', hidden_sizes=(6, 6), dropout=0.5)
  x = _inputs(batch=8, time=5, features=1, seed=5)
  variables = {'params': _randomize(_param_shapes(model, x), seed=6)}
  evaluate = jax.jit(lambda v, x: model.apply(v, x))
  return model, variables, x, evaluate


def test_dropout_changes_outputs_in_training_and_needs_an_rng(dropout_model):
  model, variables, x, evaluate = dropout_model
  train_apply = jax.jit(
      lambda v, x, key: model.apply(v, x, train=True, rngs={'dropout': key}))
  dropped = train_apply(variables, x, jax.random.PRNGKey(1))
  assert not np.allclose(dropped, evaluate(variables, x)), (
      'dropout 0.5 with train=True left the output unchanged')
  np.testing.assert_array_equal(dropped, train_apply(variables, x, jax.random.PRNGKey(1)),
                                err_msg='same dropout key, different output')
  assert not np.allclose(dropped, train_apply(variables, x, jax.random.PRNGKey(2))), (
      'a different dropout key gave the same output')
  with pytest.raises(flax.errors.InvalidRngError, match='dropout'):
    jax.jit(lambda v, x: model.apply(v, x, train=True))(variables, x)


def test_no_dropout_outside_training(dropout_model):
  model, variables, x, evaluate = dropout_model
  no_rate = models.Forecaster(cell='gru', hidden_sizes=(6, 6), dropout=0.0)

  @jax.jit
  def outputs(v, x):
    return (model.apply(v, x, train=False, rngs={'dropout': jax.random.PRNGKey(7)}),
            model.apply(v, x, train=False, rngs={'dropout': jax.random.PRNGKey(8)}),
            no_rate.apply(v, x, train=True))  # rate 0.0: no rng needed

  a, b, zero_rate = outputs(variables, x)
  np.testing.assert_array_equal(a, b, err_msg='train=False output depends on the dropout rng')
  np.testing.assert_allclose(a, evaluate(variables, x), rtol=1e-6, atol=1e-7,
                             err_msg='train=False with an rng differs from plain evaluation')
  np.testing.assert_allclose(zero_rate, a, rtol=1e-6, atol=1e-7,
                             err_msg='dropout 0 in training should equal evaluation')


def test_traced_dropout_rate_under_jit(dropout_model):
  # Each member of a vmapped sweep carries its own rate, a traced value inside the program.
  model, variables, x, evaluate = dropout_model
  key = jax.random.PRNGKey(2)
  members = jax.jit(jax.vmap(lambda rate: model.apply(
      variables, x, train=True, dropout_rate=rate, rngs={'dropout': key})))(
          jnp.array([0.0, 0.5], jnp.float32))
  plain = evaluate(variables, x)
  np.testing.assert_allclose(members[0], plain, rtol=1e-6, atol=1e-7,
                             err_msg='traced rate 0 should equal no dropout')
  assert not np.allclose(members[1], plain), 'traced rate 0.5 changed nothing'


def test_dropout_function_keeps_expected_fraction_and_rescales():
  x = jnp.ones((20000,), jnp.float32)
  y = np.asarray(models.dropout(x, jnp.float32(0.3), jax.random.PRNGKey(0)))
  dropped = np.mean(y == 0.0)
  assert abs(dropped - 0.3) < 0.02, f'rate 0.3 dropped {dropped:.3f} of the entries'
  np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6,
                             err_msg='kept entries should be scaled by 1 / (1 - rate)')


def test_unknown_cell_and_activation_are_errors():
  with pytest.raises(ValueError, match='lstmm'):
    cells.stock_cell('lstmm', 3, 'tanh')
  with pytest.raises(ValueError, match='swishh'):
    cells.activation_fn('swishh')
