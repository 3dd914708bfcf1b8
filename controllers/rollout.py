"""Batched model rollouts for planning: N candidate action sequences through the dynamics model.

Three interchangeable backends compute the same states (N, H+1, ds) from a start state and actions
(N, H, da), reading the same weights:
  - `TorchRollout`: the reference, one batched model call per time step (MKL matrix products);
  - `NumbaRollout`: one fused, `prange`-parallel CPU kernel for the whole horizon (no per-op overhead);
  - `CudaRollout`: the same fused rollout as a Numba CUDA kernel, one thread block per candidate.
`make_rollout("auto", model)` picks Numba for narrow models (hidden width <= NUMBA_MAX_WIDTH), where
torch's per-operation overhead dominates, and torch (MKL matrix products) for wider ones, where its
GEMM beats the fused CPU loops; the crossover was measured with `python -m benchmarks.planner_speed`
on a 2-core x86_64 machine. CUDA is never picked by itself: on an H200 it planned the default ant
controller's step no faster than the CPU kernels (its launch and copies cost what the GPU saves at
N = 100) and with a longer tail; it pays for large populations and wide models (docs/gpu.md). The
fused kernels cover single-model MLPs (ensembles use torch).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Literal

# One knob for every CPU kernel: OMP_NUM_THREADS (set, say, to 1 for two runs side by side on two cores)
# also caps the Numba kernel, unless NUMBA_NUM_THREADS says otherwise. Numba reads it on its first import,
# which mbmeta's commands make here. Its OpenMP threads spin while they wait: with two or three runs
# sharing two cores, training ran several times slower at two threads per run than at one.
if os.environ.get("OMP_NUM_THREADS", "").isdigit() and "NUMBA_NUM_THREADS" not in os.environ:
    os.environ["NUMBA_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"]

import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from numba import cuda  # noqa: E402

from mbmeta.model import DynamicsModel, Params
from robots.base import Mirror

BLOCK = 16  # candidates processed together by one CPU thread, so each weight is read once per block
MAX_WIDTH = 512  # widest layer (or state + action size) the CUDA kernel supports: one thread per unit, shared buffers
ACTIVATION_CODES = {"relu": 0, "tanh": 1, "silu": 2}

Backend = Literal["auto", "torch", "numba", "cuda"]
NUMBA_MAX_WIDTH = 128


class TorchRollout:
    """The reference rollout: the model's prediction with the current parameters (`model.predictor`), one
    batched call per time step."""

    def __init__(self, model: DynamicsModel) -> None:
        self.model = model
        self.set_params(model.prior())

    def set_params(self, params: Params) -> None:
        self.params = params
        self.predict = self.model.predictor(params)

    def __call__(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        n, horizon, _ = actions.shape
        with torch.no_grad():
            act = torch.as_tensor(actions, dtype=torch.float32)
            s = torch.as_tensor(state, dtype=torch.float32).expand(n, -1)
            states = [s]
            for t in range(horizon):
                s = self.predict(s, act[:, t])
                states.append(s)
            return torch.stack(states, dim=1).numpy()


class FusedWeights:
    """The model's weights as contiguous float32 arrays laid out (in, out), plus normalisation stats."""

    def __init__(self, model: DynamicsModel) -> None:
        if model.config.ensemble_size != 1 or model.config.learn_variance:
            raise ValueError("the fused rollout kernels support a single MLP without a variance head; "
                             "use backend='torch' for ensembles or learned variances")
        self.model = model
        self.activation = ACTIVATION_CODES[model.config.activation]
        self.stats = tuple(b.detach().numpy().astype(np.float32)
                           for b in (model.in_mean, model.in_std, model.delta_mean, model.delta_std))
        self.set_params(model.prior())

    def set_params(self, params: Params) -> None:
        n = self.model.n_layers
        self.weights = tuple(np.ascontiguousarray(params[f"w{i}"].detach()[0].numpy(), dtype=np.float32)
                             for i in range(n))
        self.biases = tuple(np.ascontiguousarray(params[f"b{i}"].detach()[0, 0].numpy(), dtype=np.float32)
                            for i in range(n))
        self.width = max(max(w.shape) for w in self.weights)  # the widest layer, or state + action size


class NumbaRollout(FusedWeights):
    """The whole horizon in one compiled, multi-threaded CPU kernel."""

    def __call__(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        n, horizon, _ = actions.shape
        out = np.empty((n, horizon + 1, len(state)), dtype=np.float32)
        _rollout_cpu(np.asarray(state, np.float32), np.ascontiguousarray(actions, np.float32), self.weights,
                     self.biases, *self.stats, self.activation, self.width, out)
        return out


@numba.njit(inline="always", fastmath=False)
def _activate(x: float, code: int) -> float:
    if code == 0:
        return max(x, 0.0)
    if code == 1:
        return math.tanh(x)
    return x / (1.0 + math.exp(-x))


@numba.njit(parallel=True, fastmath=True, cache=True)
def _rollout_cpu(state, actions, weights, biases, in_mean, in_std, d_mean, d_std, activation, width,  # noqa: ANN001
                 out):  # noqa: ANN001 - a compiled kernel: Numba infers the types
    # Each thread takes a block of candidates. A layer is a sum over input rows of (input value x weight
    # row): the innermost loop runs along a contiguous weight row, which LLVM vectorises, and each row
    # is reused from L1 cache by every candidate of the block. The sum order (over inputs) is fixed.
    n, horizon, da = actions.shape
    ds = state.shape[0]
    n_layers = len(weights)
    n_blocks = (n + BLOCK - 1) // BLOCK
    for block in numba.prange(n_blocks):
        first = block * BLOCK
        count = min(BLOCK, n - first)
        s = np.empty((BLOCK, ds), dtype=np.float32)
        cur = np.empty((BLOCK, width), dtype=np.float32)
        nxt = np.empty((BLOCK, width), dtype=np.float32)
        for c in range(count):
            s[c] = state
            out[first + c, 0] = state
        for t in range(horizon):
            for c in range(count):
                for i in range(ds):
                    cur[c, i] = (s[c, i] - in_mean[i]) / in_std[i]
                for j in range(da):
                    cur[c, ds + j] = (actions[first + c, t, j] - in_mean[ds + j]) / in_std[ds + j]
            for layer in range(n_layers):
                w = weights[layer]
                bias = biases[layer]
                n_in, n_out = w.shape
                for c in range(count):
                    nxt[c, :n_out] = bias
                for i in range(n_in):
                    row = w[i]
                    for c in range(count):
                        x = cur[c, i]
                        dst = nxt[c]
                        for o in range(n_out):
                            dst[o] += x * row[o]
                if layer < n_layers - 1:
                    for c in range(count):
                        for o in range(n_out):
                            nxt[c, o] = _activate(nxt[c, o], activation)
                cur, nxt = nxt, cur
            for c in range(count):
                for i in range(ds):
                    s[c, i] += cur[c, i] * d_std[i] + d_mean[i]
                out[first + c, t + 1] = s[c]


class CudaRollout(FusedWeights):
    """The fused rollout on a CUDA GPU (or Numba's CUDA simulator): one thread block per candidate.

    A block's threads each compute one unit of a layer (at each input, a warp reads neighbouring weights
    of one row of the (in, out) row-major weights: coalesced), with the layer's input and output in
    shared memory and a barrier between layers, so a control step's candidates spread over the GPU's
    multiprocessors in short loops. (The first kernel ran one thread per candidate through the whole
    network: on an H200 it was 6-38x slower than the Numba CPU kernel, see docs/gpu.md.) All layers
    travel as one flat float32 array (weights, then biases) with an integer layout table (rows: out, in,
    weight offset, bias offset), which every CUDA target accepts.
    """

    def set_params(self, params: Params) -> None:
        super().set_params(params)
        if self.width > MAX_WIDTH:
            raise ValueError(f"the CUDA rollout supports layers up to {MAX_WIDTH} wide")
        self.threads = 32 * ((self.width + 31) // 32)  # a warp multiple covering every layer's units
        layout, chunks, offset = [], [], 0
        for w, b in zip(self.weights, self.biases, strict=True):
            layout.append((w.shape[1], w.shape[0], offset, offset + w.size))  # (out, in, ...); w is (in, out)
            chunks += [w.ravel(), b]
            offset += w.size + b.size
        self.d_flat = cuda.to_device(np.concatenate(chunks))
        self.d_layout = cuda.to_device(np.array(layout, dtype=np.int64))
        self.d_stats = tuple(cuda.to_device(s) for s in self.stats)

    def __call__(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        n, horizon, _ = actions.shape
        out = cuda.device_array((n, horizon + 1, len(state)), dtype=np.float32)
        with warnings.catch_warnings():  # N blocks are fewer than Numba's occupancy rule of thumb asks for
            warnings.filterwarnings("ignore", message=".*under-utilization due to low occupancy")
            _rollout_cuda[n, self.threads](cuda.to_device(np.asarray(state, np.float32)),
                                           cuda.to_device(np.ascontiguousarray(actions, np.float32)),
                                           self.d_flat, self.d_layout, *self.d_stats, self.activation, out)
        return out.copy_to_host()


@cuda.jit
def _rollout_cuda(state, actions, flat, layout, in_mean, in_std, d_mean, d_std, activation,  # noqa: ANN001
                  out):  # noqa: ANN001 - a compiled kernel: Numba infers the types
    # Block n rolls out candidate n; thread o owns unit o of every layer (and state entry o). Each thread
    # sums its unit's inputs in the same order as the CPU kernels. Every thread reaches every barrier.
    n = cuda.blockIdx.x
    o = cuda.threadIdx.x
    horizon, da = actions.shape[1], actions.shape[2]
    ds = state.shape[0]
    n_layers = layout.shape[0]
    s = cuda.shared.array(MAX_WIDTH, numba.float32)
    a = cuda.shared.array(MAX_WIDTH, numba.float32)
    b = cuda.shared.array(MAX_WIDTH, numba.float32)
    if o < ds:
        s[o] = state[o]
        out[n, 0, o] = state[o]
    for t in range(horizon):
        if o < ds:
            a[o] = (s[o] - in_mean[o]) / in_std[o]
        elif o < ds + da:
            a[o] = (actions[n, t, o - ds] - in_mean[o]) / in_std[o]
        cuda.syncthreads()
        use_a = True  # the layer's input is in a (output to b), or the other way round
        for layer in range(n_layers):
            n_out, n_in, w_at, b_at = layout[layer, 0], layout[layer, 1], layout[layer, 2], layout[layer, 3]
            if o < n_out:
                acc = flat[b_at + o]
                for i in range(n_in):
                    acc += flat[w_at + i * n_out + o] * (a[i] if use_a else b[i])
                if layer < n_layers - 1:
                    if activation == 0:
                        acc = max(acc, numba.float32(0.0))
                    elif activation == 1:
                        acc = math.tanh(acc)
                    else:
                        acc = acc / (numba.float32(1.0) + math.exp(-acc))
                if use_a:
                    b[o] = acc
                else:
                    a[o] = acc
            use_a = not use_a
            cuda.syncthreads()
        if o < ds:  # each thread reads and writes its own entries only, until the next barrier
            s[o] = s[o] + ((a[o] if use_a else b[o]) * d_std[o] + d_mean[o])
            out[n, t + 1, o] = s[o]


def cuda_available(simulator_counts: bool = True) -> bool:
    """Whether the CUDA backend can run: a GPU, or Numba's CUDA simulator unless `simulator_counts=False`."""
    if numba.config.ENABLE_CUDASIM:
        return simulator_counts
    try:
        return cuda.is_available()
    except Exception:  # a broken driver counts as no GPU
        return False


def make_rollout(backend: Backend, model: DynamicsModel) -> TorchRollout | NumbaRollout | CudaRollout:
    """The rollout backend by name; "auto": Numba for narrow models, else torch (CUDA only when asked for)."""
    fusable = model.config.ensemble_size == 1 and not model.config.learn_variance
    if backend == "auto":
        backend = "numba" if fusable and max(model.config.hidden) <= NUMBA_MAX_WIDTH else "torch"
    if backend == "torch":
        return TorchRollout(model)
    if backend == "numba":
        return NumbaRollout(model)
    if backend == "cuda":
        if not cuda_available():
            raise ValueError("backend 'cuda' needs a CUDA GPU (or NUMBA_ENABLE_CUDASIM=1 for the simulator); "
                             "use 'auto', 'numba' or 'torch'")
        return CudaRollout(model)
    raise ValueError(f"unknown rollout backend {backend!r}; choose auto, torch, numba or cuda")


class MirroredRollout:
    """Any rollout, able to predict the robot seen in its mirror (`robots.base.Mirror`).

    With `mirrored` set, the model is called on the mirror image of the start state and actions, and its
    states are mirrored back: the planner, which always works in the robot's own frame, then plans on what
    the model knows about the other side of the body.
    """

    def __init__(self, inner: TorchRollout | NumbaRollout | CudaRollout, mirror: Mirror) -> None:
        self.inner, self.mirror = inner, mirror
        self.mirrored = False

    def set_params(self, params: Params) -> None:
        self.inner.set_params(params)

    def __call__(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        if not self.mirrored:
            return self.inner(state, actions)
        return self.mirror.obs(self.inner(self.mirror.obs(state), self.mirror.action(actions)))


class MaskedRollout:
    """Any rollout, with some action components multiplied by 0 (`live` is 0 there, 1 elsewhere) before the
    model sees them: the model then predicts actuators known to have failed as motors at zero torque."""

    def __init__(self, inner: TorchRollout | NumbaRollout | CudaRollout, live: np.ndarray) -> None:
        self.inner, self.live = inner, live

    def set_params(self, params: Params) -> None:
        self.inner.set_params(params)

    def __call__(self, state: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return self.inner(state, actions * self.live)
