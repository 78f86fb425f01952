#!/usr/bin/env python3
"""MorphNet Edge's PyTorch training worker.

Spawned by the TypeScript side (src/train/torch/torch-engine.ts), one process per engine. It speaks
the protocol of src/train/torch/protocol.ts: one JSON object per line on stdin (commands, each with
an `id`) and on stdout (a reply per command, `{"id", "ok": true, ...}` or `{"id", "ok": false,
"error": {...}}`, and `{"id", "event": "step", ...}` while an epoch runs). Bulk data never goes
through the pipe: weights travel as raw little-endian float32 files in the tfjs layout, dataset
splits as raw uint8/float32 files the worker reads once, both written in a directory the parent
owns. Logs go to stderr, which the parent keeps the tail of for error messages.

The network is the parent's spec of our graph IR (src/train/torch/net-spec.ts): every layer kind
here reproduces tfjs-layers exactly (NHWC weights converted to NCHW, TensorFlow's asymmetric 'same'
padding, for transposed convolutions too, batch norm with Keras's momentum and the biased batch
variance for the moving statistics, Flatten in NHWC order, tfjs's resize arithmetic for UpSampling2D),
so that the same weights give the same outputs in both engines. Where tfjs departs from Keras
(it ignores Conv2DTranspose's output_padding and GlobalAveragePooling2D's keepdims, and cannot load
Normalization, 'silu' or 'hard_swish'), the worker computes what Keras computes, which is the shape
our parser gives those layers.

Everything MorphNet-specific stays in TypeScript; the only MorphNet step here is the proximal map
on batch-norm gammas after each optimizer step, whose per-group thresholds the parent sends.

The worker exits when stdin closes (its parent is gone), so it never outlives the parent.
"""
import functools
import json
import math
import operator
import os
import queue
import signal
import sys
import threading
import time

PROTOCOL = 1
EPSILON = 1e-7  # the probability clip of tfjs's cross-entropy (src/train/step.ts)
DECAYED_KINDS = ('kernel', 'depthwise_kernel', 'pointwise_kernel')

_out_lock = threading.Lock()


def send(obj):
    line = json.dumps(obj, allow_nan=False, separators=(',', ':'))
    with _out_lock:
        sys.stdout.write(line + '\n')
        sys.stdout.flush()


def log(msg):
    sys.stderr.write(f'[torch-worker] {msg}\n')
    sys.stderr.flush()


def finite_or_none(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


class WorkerError(Exception):
    def __init__(self, code, message, **details):
        super().__init__(message)
        self.code = code
        self.details = details


def die_with_parent():
    """Asks Linux to SIGTERM this process when its parent dies (belt and braces with the stdin EOF)."""
    try:
        import ctypes
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux, or no libc: stdin EOF still ends the worker
        pass


try:
    import torch
    import torch.nn.functional as F
except Exception as err:  # no torch: say so on the protocol, the parent turns it into a clear error
    send({'type': 'hello', 'ok': False, 'protocol': PROTOCOL, 'error': f'{type(err).__name__}: {err}', 'python': sys.version.split()[0], 'executable': sys.executable})
    sys.exit(3)


# ---------------------------------------------------------------------------------------------
# Weight layouts: tfjs stores NHWC-era layouts, torch wants its own.


def to_torch(kind, wkind, t):
    if wkind == 'kernel' and kind == 'dense':
        return t.t().contiguous()
    # Conv: [kh, kw, cin/groups, cout] -> [cout, cin/groups, kh, kw]. Conv2DTranspose stores
    # [kh, kw, out, in] and torch's conv_transpose2d wants [in, out, kh, kw]: the same permutation.
    if wkind in ('kernel', 'pointwise_kernel'):
        return t.permute(3, 2, 0, 1).contiguous()
    if wkind == 'depthwise_kernel':  # [kh, kw, cin, m] -> [cin*m, 1, kh, kw]; output channel c*m + m'
        kh, kw, cin, m = t.shape
        return t.permute(2, 3, 0, 1).reshape(cin * m, 1, kh, kw).contiguous()
    return t.contiguous()


def to_tfjs(kind, wkind, t, shape):
    if wkind == 'kernel' and kind == 'dense':
        return t.t().contiguous()
    if wkind in ('kernel', 'pointwise_kernel'):
        return t.permute(2, 3, 1, 0).contiguous()
    if wkind == 'depthwise_kernel':
        kh, kw, cin, m = shape
        return t.reshape(cin, m, kh, kw).permute(2, 3, 0, 1).contiguous()
    return t.contiguous()


# ---------------------------------------------------------------------------------------------
# Layer arithmetic, as tfjs-layers does it.


def same_pads(size, k, s, d):
    """TensorFlow 'same': output ceil(size/s); the extra padding goes at the end (bottom/right)."""
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def pads_of(attrs, h, w):
    if attrs['padding'] != 'same':
        return None
    kh, kw = attrs['kernelSize']
    sh, sw = attrs['strides']
    dh, dw = attrs.get('dilationRate', [1, 1])
    top, bottom = same_pads(h, kh, sh, dh)
    left, right = same_pads(w, kw, sw, dw)
    return (left, right, top, bottom)


def deconv_length(size, k, s, padding, output_padding):
    """Keras's deconv_output_length (src/graph/ops/conv.ts `deconvLength`), dilation 1."""
    if output_padding is None:
        return size * s + max(k - s, 0) if padding == 'valid' else size * s
    pad = k // 2 if padding == 'same' else 0
    return (size - 1) * s + k - 2 * pad + output_padding


def deconv_crop(size, k, s, padding, out):
    """Rows (columns) a transposed convolution drops before and adds after the full result.

    TensorFlow computes it as the gradient of the convolution whose input is `out` long: 'same'
    pads that convolution by max((size-1)·s + k - out, 0), the smaller half before; 'valid' not at
    all. The full transposed result is (size-1)·s + k long; rows past its end are zeros.
    """
    full = (size - 1) * s + k
    before = max(full - out, 0) // 2 if padding == 'same' else 0
    return before, out - (full - before)


def resize_source(n_in, n_out):
    """tfjs's resize arithmetic (alignCorners and halfPixelCenters false), in doubles as in JS."""
    ratio = n_in / n_out
    return [ratio * r for r in range(n_out)]


def activate(name, x, attrs, channel_dim):
    n = name.lower()
    if n in ('linear', 'none'):
        return x
    if n == 'relu':
        mx = attrs.get('maxValue')
        return torch.clamp(x, 0, mx) if mx is not None else F.relu(x)
    if n == 'relu6':
        return F.hardtanh(x, 0.0, 6.0)
    if n == 'sigmoid':
        return torch.sigmoid(x)
    if n == 'tanh':
        return torch.tanh(x)
    if n == 'softmax':
        return F.softmax(x, dim=channel_dim)
    if n == 'elu':
        return F.elu(x, alpha=attrs.get('alpha', 1.0))
    if n == 'selu':
        return F.selu(x)
    if n == 'softplus':
        return F.softplus(x)
    if n == 'softsign':
        return F.softsign(x)
    if n in ('swish', 'silu'):
        return x * torch.sigmoid(x)
    if n in ('hard_sigmoid', 'hardsigmoid'):  # tfjs (and Keras 2): clip(0.2x + 0.5, 0, 1)
        return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)
    if n in ('hard_swish', 'hard_silu'):  # Keras: x · relu6(x + 3) / 6 (tfjs has none)
        return x * (F.hardtanh(x + 3.0, 0.0, 6.0) / 6.0)
    if n == 'gelu':  # tfjs: x · (1 + erf(x / √2)) / 2, the exact form
        return F.gelu(x)
    if n == 'mish':
        return x * torch.tanh(F.softplus(x))
    if n == 'leakyrelu':
        return F.leaky_relu(x, attrs.get('alpha', 0.3))
    if n == 'exponential':
        return torch.exp(x)
    raise WorkerError('unsupported-layer', f'activation {name!r} is not built by the torch engine')


# Keras merge layers as binary ops folded over their inputs (Average: the Add, then divided).
MERGES = {'Add': operator.add, 'Average': operator.add, 'Subtract': operator.sub, 'Multiply': operator.mul, 'Maximum': torch.maximum, 'Minimum': torch.minimum}

# NHWC axis -> NCHW dim for rank-4 tensors.
NCHW_DIM = {0: 0, 1: 2, 2: 3, 3: 1}


def nchw_axis(axis, rank):
    a = axis if axis >= 0 else axis + rank
    return NCHW_DIM[a] if rank == 4 else a


def to_nhwc(x):
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else x


def from_nhwc(x):
    return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


class Net(torch.nn.Module):
    """Our graph IR, executed call by call; tensors are NCHW (rank 4) or [batch, features]."""

    def __init__(self, spec, device):
        super().__init__()
        self.layers = {l['name']: l for l in spec['layers']}
        self.calls = spec['calls']
        self.input_call = spec['input']
        self.output_call = spec['output']
        self.weights = []  # (tfjs name, layer kind, weight kind, tfjs shape, tensor)
        self.params_by_layer = {}
        self.kernels = []
        self.bn_buffers = {}
        self.pool_counts = {}
        self.resize_maps = {}
        self.constants = {}
        self.device = device
        for i, layer in enumerate(spec['layers']):
            kind = layer['kind']
            got = {}
            for w in layer['weights']:
                shape = w['shape']
                t = torch.zeros(shape)  # a list: [] is a scalar (Normalization's count)
                tt = to_torch(kind, w['kind'], t)
                # Batch-norm moving statistics and Normalization's adapted ones are never trained.
                trainable = layer['trainable'] and w['kind'] not in ('moving_mean', 'moving_variance') and kind != 'normalize'
                key = f'l{i}_{w["kind"]}'
                if trainable:
                    p = torch.nn.Parameter(tt.to(device))
                    self.register_parameter(key, p)
                    ref = p
                else:
                    self.register_buffer(key, tt.to(device))
                    ref = getattr(self, key)
                got[w['kind']] = key
                self.weights.append((f'{layer["name"]}/{w["kind"]}', kind, w['kind'], shape, key))
                if trainable and w['kind'] in DECAYED_KINDS:
                    self.kernels.append(key)
            self.params_by_layer[layer['name']] = got

    def w(self, layer, kind):
        key = self.params_by_layer[layer].get(kind)
        return getattr(self, key) if key is not None else None

    def forward(self, x, training, capture=None):
        env = {self.input_call: x}
        for call in self.calls:
            if call['id'] == self.input_call:
                continue
            layer = self.layers[call['layer']]
            ins = [env[r] for r in call['inputs']]
            y = self.apply_layer(layer, ins, training)
            if capture is not None and layer['kind'] == 'batchnorm' and layer['name'] in capture:
                capture[layer['name']].append(ins[0])
            env[call['id']] = y
        return env[self.output_call]

    def conv(self, name, a, x, weight, groups):
        pads = pads_of(a, x.shape[2], x.shape[3])
        padding = 0
        if pads is not None and any(pads):
            left, right, top, bottom = pads
            if left == right and top == bottom:
                padding = (top, left)  # symmetric: the convolution pads, no copy of the input
            else:
                x = F.pad(x, pads)
        return F.conv2d(x, weight, None, tuple(a['strides']), padding, tuple(a.get('dilationRate', [1, 1])), groups)

    def apply_layer(self, layer, ins, training):
        k = layer['kind']
        a = layer['attrs']
        name = layer['name']
        x = ins[0]
        if k == 'conv2d':
            y = self.conv(name, a, x, self.w(name, 'kernel'), a.get('groups', 1))
            b = self.w(name, 'bias')
            if b is not None:
                y = y + b.view(1, -1, 1, 1)
            return activate(a['activation'], y, a, 1)
        if k == 'depthwise':
            y = self.conv(name, a, x, self.w(name, 'depthwise_kernel'), x.shape[1])
            b = self.w(name, 'bias')
            if b is not None:
                y = y + b.view(1, -1, 1, 1)
            return activate(a['activation'], y, a, 1)
        if k == 'separable':
            y = self.conv(name, a, x, self.w(name, 'depthwise_kernel'), x.shape[1])
            y = F.conv2d(y, self.w(name, 'pointwise_kernel'))
            b = self.w(name, 'bias')
            if b is not None:
                y = y + b.view(1, -1, 1, 1)
            return activate(a['activation'], y, a, 1)
        if k == 'conv2dtranspose':
            y = self.conv_transpose(a, x, self.w(name, 'kernel'))
            b = self.w(name, 'bias')
            if b is not None:
                y = y + b.view(1, -1, 1, 1)
            return activate(a['activation'], y, a, 1)
        if k == 'dense':
            if x.dim() == 4:  # tfjs applies Dense on the last (channel) axis
                y = F.linear(to_nhwc(x), self.w(name, 'kernel'), self.w(name, 'bias'))
                return from_nhwc(activate(a['activation'], y, a, -1))
            y = F.linear(x, self.w(name, 'kernel'), self.w(name, 'bias'))
            return activate(a['activation'], y, a, -1)
        if k == 'batchnorm':
            return self.batchnorm(name, a, x, training)
        if k == 'activation':
            return activate(a['activation'], x, a, nchw_axis(a.get('axis', -1), x.dim()))
        if k == 'dropout':
            rate = a.get('rate', 0.0)
            if not training or rate <= 0:
                return x
            if a.get('spatial') and x.dim() == 4:
                return F.dropout2d(x, rate, True)
            return F.dropout(x, rate, True)
        if k == 'zeropad':
            (t, b), (l, r) = a['padding']
            return F.pad(x, (l, r, t, b))
        if k == 'pool':
            return self.pool(name, a, x)
        if k == 'globalpool':
            y = x.mean(dim=(2, 3), keepdim=a['keepdims']) if a['mode'] == 'avg' else x.amax(dim=(2, 3), keepdim=a['keepdims'])
            return y
        if k == 'elementwise':
            # Operands broadcast (the squeeze-and-excitation gate [N, C, 1, 1] times [N, C, H, W]);
            # a lower-rank one first gains unit axes after the batch, as Keras and tfjs do.
            rank = max(t.dim() for t in ins)
            ins = [t.reshape(t.shape[0], t.shape[1], *([1] * (rank - t.dim()))) if t.dim() == 2 and rank == 4 else t for t in ins]
            y = functools.reduce(MERGES[a['op']], ins)
            return y / len(ins) if a['op'] == 'Average' else y
        if k == 'concat':
            return torch.cat(ins, dim=nchw_axis(a['axis'], x.dim()))
        if k == 'flatten':
            return to_nhwc(x).reshape(x.shape[0], -1)
        if k == 'reshape':
            # Through NHWC: [N, C] -> [N, 1, 1, C] (an SE block's gate) and back keep the channels.
            target = a['targetShape']
            y = to_nhwc(x).reshape(x.shape[0], *target)
            return from_nhwc(y) if y.dim() == 4 else y
        if k == 'upsample':
            return self.upsample(name, a, x)
        if k == 'crop':
            (t, b), (l, r) = a['cropping']
            return x[:, :, t:x.shape[2] - b, l:x.shape[3] - r]
        if k == 'rescale':
            return x * self.per_channel(name, 'scale', a['scale'], x) + self.per_channel(name, 'offset', a['offset'], x)
        if k == 'normalize':
            # Keras: (x - mean) / max(sqrt(variance), epsilon), over the channel (last) axis.
            shape = (1, -1, 1, 1) if x.dim() == 4 else (-1,)
            sd = torch.clamp(torch.sqrt(self.w(name, 'variance')), min=1e-7)
            return (x - self.w(name, 'mean').view(shape)) / sd.view(shape)
        raise WorkerError('unsupported-layer', f'layer {name!r} of kind {k!r} is not built by the torch engine', layer=name)

    def conv_transpose(self, a, x, weight):
        """TensorFlow's conv2d_transpose: the full result, then TF's padding cropped (or zeros added)."""
        kh, kw = a['kernelSize']
        sh, sw = a['strides']
        h, w = x.shape[2], x.shape[3]
        op = a.get('outputPadding') or [None, None]
        ho = deconv_length(h, kh, sh, a['padding'], op[0])
        wo = deconv_length(w, kw, sw, a['padding'], op[1])
        top, bottom = deconv_crop(h, kh, sh, a['padding'], ho)
        left, right = deconv_crop(w, kw, sw, a['padding'], wo)
        y = F.conv_transpose2d(x, weight, None, (sh, sw))
        if top or bottom or left or right:
            y = F.pad(y, (-left, right, -top, bottom))  # negative: crop; positive: zero rows
        return y

    def per_channel(self, name, which, v, x):
        """Rescaling's scale or offset: a number, or one value per channel (or a list of one)."""
        if not isinstance(v, list):
            return float(v)
        key = (name, which, x.dim(), x.device, x.dtype)
        t = self.constants.get(key)
        if t is None:
            t = torch.tensor(v, dtype=x.dtype, device=x.device)
            t = self.constants[key] = t.view(1, -1, 1, 1) if x.dim() == 4 else t
        return t

    def upsample(self, name, a, x):
        """UpSampling2D as tfjs computes it: tf.image.resizeNearestNeighbor / resizeBilinear with
        alignCorners and halfPixelCenters false, source index r·(in/out), not torch's half-pixel one."""
        h, w = x.shape[2], x.shape[3]
        ho, wo = h * a['size'][0], w * a['size'][1]
        key = (name, h, w, x.device)
        maps = self.resize_maps.get(key)
        if maps is None:
            maps = []
            for n_in, n_out in ((h, ho), (w, wo)):
                src = resize_source(n_in, n_out)
                if a['interpolation'] == 'nearest':
                    near = [min(n_in - 1, math.floor(f)) for f in src]
                    maps.append(torch.tensor(near, dtype=torch.int64, device=x.device))
                else:
                    lo = [max(0, math.floor(f)) for f in src]
                    hi = [min(n_in - 1, math.ceil(f)) for f in src]
                    frac = [f - l for f, l in zip(src, lo)]
                    maps.append((torch.tensor(lo, dtype=torch.int64, device=x.device), torch.tensor(hi, dtype=torch.int64, device=x.device), torch.tensor(frac, dtype=x.dtype, device=x.device)))
            self.resize_maps[key] = maps
        (rows, cols) = maps
        if a['interpolation'] == 'nearest':
            return x.index_select(2, rows).index_select(3, cols)
        # Along the width first, then the height, each as a + (b - a)·frac, in tfjs's order.
        lo, hi, frac = cols
        left = x.index_select(3, lo)
        x = left + (x.index_select(3, hi) - left) * frac.view(1, 1, 1, -1)
        lo, hi, frac = rows
        top = x.index_select(2, lo)
        return top + (x.index_select(2, hi) - top) * frac.view(1, 1, -1, 1)

    def batchnorm(self, name, a, x, training):
        gamma = self.w(name, 'gamma')
        beta = self.w(name, 'beta')
        mean = self.w(name, 'moving_mean')
        var = self.w(name, 'moving_variance')
        eps = a['epsilon']
        if not training:
            return F.batch_norm(x, mean, var, gamma, beta, False, 0.0, eps)
        # tfjs moves its statistics toward the *biased* batch variance (tf.moments), with Keras's
        # momentum (moving = moving - (moving - batch)·(1 - momentum)). torch's fused batch norm
        # moves them toward the unbiased one; rather than a second pass over the activations, the
        # batch's variance is recovered from torch's update and the difference taken back out.
        decay = 1.0 - a['momentum']
        n = x.numel() // x.shape[1]
        if n < 2 or decay <= 0:
            y = F.batch_norm(x, None, None, gamma, beta, True, 0.0, eps)
            with torch.no_grad():
                dims = (0, 2, 3) if x.dim() == 4 else (0,)
                bv, bm = torch.var_mean(x.detach(), dim=dims, unbiased=False)
                mean.sub_((mean - bm) * decay)
                var.sub_((var - bv) * decay)
            return y
        # Copies go through the call: autograd keeps what batch_norm saw and refuses later edits.
        new_mean = mean.clone()
        new_var = var.clone()
        y = F.batch_norm(x, new_mean, new_var, gamma, beta, True, decay, eps)
        with torch.no_grad():
            unbiased = (new_var - (1.0 - decay) * var) / decay
            mean.copy_(new_mean)
            var.copy_(new_var - unbiased * (decay / n))
        return y

    def pool(self, name, a, x):
        kh, kw = a['poolSize']
        pads = pads_of({'padding': a['padding'], 'kernelSize': [kh, kw], 'strides': a['strides']}, x.shape[2], x.shape[3])
        strides = tuple(a['strides'])
        if a['mode'] == 'max':
            if pads is not None and any(pads):
                x = F.pad(x, pads, value=float('-inf'))
            return F.max_pool2d(x, (kh, kw), strides)
        if pads is None or not any(pads):
            return F.avg_pool2d(x, (kh, kw), strides)
        # TensorFlow averages over the window's cells inside the image only.
        key = (name, x.shape[2], x.shape[3])
        count = self.pool_counts.get(key)
        if count is None:
            ones = torch.ones(1, 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
            count = F.avg_pool2d(F.pad(ones, pads), (kh, kw), strides, divisor_override=1)
            self.pool_counts[key] = count
        return F.avg_pool2d(F.pad(x, pads), (kh, kw), strides, divisor_override=1) / count

    # -- weights in the tfjs layout, through files -------------------------------------------

    def load_file(self, path):
        total = sum(math.prod(s) for _, _, _, s, _ in self.weights)
        flat = torch.from_file(path, shared=False, size=total, dtype=torch.float32) if total > 0 else torch.zeros(0)
        off = 0
        with torch.no_grad():
            for _, kind, wkind, shape, key in self.weights:
                n = math.prod(shape)
                t = flat[off:off + n].reshape(shape)
                getattr(self, key).copy_(to_torch(kind, wkind, t).to(self.device))
                off += n

    def save_file(self, path):
        parts = []
        with torch.no_grad():
            for _, kind, wkind, shape, key in self.weights:
                t = to_tfjs(kind, wkind, getattr(self, key).detach().float().cpu(), shape)
                parts.append(t.reshape(-1))
        flat = torch.cat(parts) if parts else torch.zeros(0)
        tmp = path + '.tmp'
        with open(tmp, 'wb') as f:
            f.write(flat.numpy().astype('<f4').tobytes())
        os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# The MorphNet proximal step on batch-norm gammas (src/graph/gamma-plan.ts, applyGroupProx).


class Prox:
    """Per group: member gammas [channels, members] gathered by index, prox of t·max|v| per channel."""

    def __init__(self, net, groups):
        self.groups = []
        for g in groups:
            thr = float(g['threshold'])
            if thr <= 0:
                continue
            members = []
            for s in g['slices']:
                key = net.params_by_layer.get(s['layer'], {}).get('gamma')
                if key is None:
                    continue
                base = torch.arange(s['channels'], device=net.device) * s['repeat']
                for p in range(s['tile']):
                    for r in range(s['repeat']):
                        members.append((key, base + (p * s['stride'] + s['offset'] + r)))
            if members:
                self.groups.append((thr, members))
        self.net = net

    @torch.no_grad()
    def apply(self, lr):
        for thr, members in self.groups:
            t = lr * thr
            params = [getattr(self.net, key) for key, _ in members]
            v = torch.stack([p.data[idx].double() for p, (_, idx) in zip(params, members)], dim=1)
            a = v.abs()
            if v.shape[1] == 1:
                out = torch.sign(v) * torch.clamp(a - t, min=0.0)
            else:
                m = v.shape[1]
                u, _ = a.sort(dim=1, descending=True)
                cand = (u.cumsum(dim=1) - t) / torch.arange(1, m + 1, device=v.device, dtype=v.dtype)
                valid = (u - cand) > 0
                # The last j where u_j exceeds its candidate level (the TS loop keeps the last one).
                last = (m - 1) - valid.flip(1).to(torch.int64).argmax(dim=1)
                theta = cand.gather(1, last.unsqueeze(1))
                out = torch.sign(v) * torch.minimum(a, theta)
                out[a.sum(dim=1) <= t] = 0.0
            for k, (p, (_, idx)) in enumerate(zip(params, members)):
                p.data[idx] = out[:, k].to(p.dtype)


# ---------------------------------------------------------------------------------------------
# The worker state and its commands.


class Split:
    def __init__(self, msg, device):
        n, h, w, c = msg['shape']
        dtype = torch.uint8 if msg['dtype'] == 'uint8' else torch.float32
        if n == 0:
            x, y = torch.zeros(0, h, w, c, dtype=dtype), torch.zeros(0, dtype=torch.int64)
        else:
            x = torch.from_file(msg['x'], shared=False, size=n * h * w * c, dtype=dtype).reshape(n, h, w, c)
            y = torch.from_file(msg['y'], shared=False, size=n, dtype=torch.int32).to(torch.int64)
        # Whole splits live on the device (CUDA or not): one gather per batch, no copies per step.
        self.x = x.to(device)
        self.y = y.to(device)
        self.uint8 = dtype == torch.uint8
        self.n = n

    def batch(self, idx):
        x = self.x.index_select(0, idx)
        # Our datasets hold byte/255 rounded to float32; float32 division of the byte gives the same.
        x = x.float().div_(255.0) if self.uint8 else x
        # NHWC memory seen as NCHW is torch's channels_last: no copy, and oneDNN's fastest layout.
        return x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last), self.y.index_select(0, idx)


def task_loss(out, y, kind, reduction='mean'):
    if kind == 'logits':
        lp = F.log_softmax(out, dim=-1)
    else:
        lp = torch.log(torch.clamp(out, EPSILON, 1 - EPSILON))
    per = -lp.gather(1, y.unsqueeze(1)).squeeze(1)
    return per.mean() if reduction == 'mean' else per.sum()


class Worker:
    def __init__(self, device, threads):
        self.device = device
        self.threads = threads
        self.net = None
        self.output_kind = 'probabilities'
        self.opt = None
        self.opt_kind = None
        self.weight_decay = 0.0
        self.splits = {}
        self.inbox = queue.Queue()
        self.pending = []

    # commands ---------------------------------------------------------------------------------

    def cmd_build(self, msg):
        self.net = None
        self.opt = None
        net = Net(msg['spec'], self.device)
        # A dry forward pass on a tiny batch finds what the worker cannot build before training does.
        h, w, c = msg['spec']['inputShape']
        with torch.no_grad():
            net.forward(torch.zeros(2, c, h, w, device=self.device), False)
        if msg.get('weights'):
            net.load_file(msg['weights'])
        # channels_last: oneDNN's convolutions run 1.2–1.7× faster on it here than on NCHW
        # (docs/benchmarks.md, "Training engines"); results are the same, only strides differ.
        self.net = net.to(memory_format=torch.channels_last)
        self.output_kind = msg['spec']['outputKind']
        params = sum(math.prod(s) for _, _, _, s, _ in net.weights)
        return {'params': params}

    def cmd_data(self, msg):
        self.splits[msg['key']] = Split(msg, self.device)
        return {'n': self.splits[msg['key']].n}

    def cmd_drop_data(self, msg):
        self.splits.pop(msg['key'], None)
        return {}

    def cmd_optimizer(self, msg):
        self.need_net()
        params = [p for p in self.net.parameters() if p.requires_grad]
        kind = msg['kind']
        lr = float(msg['lr'])
        if kind == 'adam':
            # tfjs's Adam: β 0.9/0.999, ε = the backend's epsilon 1e-7, the same bias-corrected step.
            self.opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-7)
        else:
            # tfjs's momentum: accum = m·accum + g; w -= lr·accum (torch SGD with dampening 0).
            self.opt = torch.optim.SGD(params, lr=lr, momentum=float(msg.get('momentum', 0.0)))
        self.opt_kind = kind
        self.weight_decay = float(msg.get('weightDecay', 0.0))
        return {}

    def cmd_set_weights(self, msg):
        self.need_net()
        self.net.load_file(msg['file'])
        return {}

    def cmd_get_weights(self, msg):
        self.need_net()
        self.net.save_file(msg['file'])
        return {}

    def cmd_gammas(self, msg):
        self.need_net()
        out = {}
        for name in msg['layers']:
            g = self.net.w(name, 'gamma')
            if g is not None:
                out[name] = [float(v) for v in g.detach().float().cpu().tolist()]
        return {'gammas': out}

    def cmd_forward(self, msg):
        """Outputs of the network on a batch from a file (the equivalence tests' probe)."""
        self.need_net()
        n, h, w, c = msg['shape']
        x = torch.from_file(msg['x'], shared=False, size=n * h * w * c, dtype=torch.float32).reshape(n, h, w, c)
        x = x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last).to(self.device)
        training = bool(msg.get('training', False))
        with torch.no_grad():
            out = self.net.forward(x, training)
        out = to_nhwc(out).contiguous().float().cpu()
        with open(msg['out'], 'wb') as f:
            f.write(out.numpy().astype('<f4').tobytes())
        return {'shape': list(out.shape)}

    def cmd_prox(self, msg):
        """One proximal step at `lr` (the equivalence test of the step alone)."""
        self.need_net()
        Prox(self.net, msg['groups']).apply(float(msg['lr']))
        return {}

    def cmd_evaluate(self, msg):
        self.need_net()
        split = self.split(msg['key'])
        bs = int(msg['batchSize'])
        loss_sum = 0.0
        hits = 0
        self.net.eval()
        with torch.no_grad():
            for s in range(0, split.n, bs):
                idx = torch.arange(s, min(s + bs, split.n), device=self.device)
                x, y = split.batch(idx)
                out = self.net.forward(x, False)
                loss_sum += float(task_loss(out, y, self.output_kind, 'sum'))
                hits += int((out.argmax(dim=-1) == y).sum())
        n = split.n
        if n == 0:
            return {'loss': None, 'accuracy': None, 'n': 0}
        return {'loss': finite_or_none(loss_sum / n), 'lossText': str(loss_sum / n), 'accuracy': hits / n, 'n': n}

    def cmd_recalibrate(self, msg):
        """Precise batch norm (src/train/bn-recalibrate.ts): moving statistics from training batches."""
        self.need_net()
        split = self.split(msg['key'])
        layers = msg['layers']
        order = torch.tensor(msg['order'], dtype=torch.int64, device=self.device)
        bs = int(msg['batchSize'])
        sums = {l: None for l in layers}
        squares = {l: None for l in layers}
        seen = 0
        with torch.no_grad():
            for s in range(0, len(order), bs):
                capture = {l: [] for l in layers}
                x, _ = split.batch(order[s:s + bs])
                self.net.forward(x, True, capture)
                for l in layers:
                    t = capture[l][0]
                    dims = (0, 2, 3) if t.dim() == 4 else (0,)
                    m = t.mean(dim=dims)
                    q = (t * t).mean(dim=dims)
                    sums[l] = m if sums[l] is None else sums[l] + m
                    squares[l] = q if squares[l] is None else squares[l] + q
                seen += 1
            if seen > 0:
                for l in layers:
                    mean = sums[l] / seen
                    var = torch.relu(squares[l] / seen - mean * mean)
                    self.net.w(l, 'moving_mean').copy_(mean)
                    self.net.w(l, 'moving_variance').copy_(var)
        return {'updated': len(layers) if seen > 0 else 0}

    def cmd_epoch(self, msg):
        self.need_net()
        if self.opt is None:
            raise WorkerError('protocol', 'epoch before optimizer')
        split = self.split(msg['key'])
        order = torch.tensor(msg['order'], dtype=torch.int64, device=self.device)
        lrs = msg['lrs']
        bs = int(msg['batchSize'])
        steps = min(len(lrs), -(-len(order) // bs))
        prox = Prox(self.net, msg['prox']) if msg.get('prox') else None
        events = bool(msg.get('events', True))
        net = self.net
        net.train()
        kernels = [getattr(net, k) for k in net.kernels]
        loss_sum = 0.0
        seen = 0
        done = 0
        stopped = False
        for s in range(steps):
            if self.stop_requested():
                stopped = True
                break
            t0 = time.perf_counter()
            idx = order[s * bs:(s + 1) * bs]
            x, y = split.batch(idx)
            lr = float(lrs[s])
            for group in self.opt.param_groups:
                group['lr'] = lr
            self.opt.zero_grad(set_to_none=True)
            out = net.forward(x, True)
            task = task_loss(out, y, self.output_kind)
            total = task
            if self.weight_decay > 0 and kernels:
                total = total + (self.weight_decay / 2) * sum((k * k).sum() for k in kernels)
            total.backward()
            # One sum of the loss, the outputs and every gradient is finite exactly when each is
            # (as in src/train/step.ts), and costs one device sync.
            with torch.no_grad():
                parts = [total.detach(), out.detach().sum()] + [p.grad.sum() for p in net.parameters() if p.grad is not None]
                sentinel = float(torch.stack(parts).sum())
                total_v = float(total.detach())
                task_v = float(task.detach())
            if not math.isfinite(total_v) or not math.isfinite(sentinel):
                problem = f'the loss is {total_v} (task {task_v}, extra 0)' if not math.isfinite(total_v) else f"the model's outputs or gradients are not finite (loss {task_v}, extra 0)"
                return {'steps': done, 'lossSum': loss_sum, 'seen': seen, 'stopped': False, 'nan': {'step': s + 1, 'problem': problem}}
            self.opt.step()
            if prox is not None:
                prox.apply(lr)
            n = int(idx.shape[0])
            loss_sum += task_v * n
            seen += n
            done += 1
            if events:
                send({'id': msg['id'], 'event': 'step', 'step': s + 1, 'loss': task_v, 'lr': lr, 'n': n, 'seconds': time.perf_counter() - t0})
        return {'steps': done, 'lossSum': loss_sum, 'seen': seen, 'stopped': stopped, 'nan': None}

    # plumbing -----------------------------------------------------------------------------------

    def sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()

    def need_net(self):
        if self.net is None:
            raise WorkerError('protocol', 'no network built yet')

    def split(self, key):
        s = self.splits.get(key)
        if s is None:
            raise WorkerError('protocol', f'no data {key!r} loaded')
        return s

    def stop_requested(self):
        while True:
            try:
                m = self.inbox.get_nowait()
            except queue.Empty:
                return False
            if m is None:
                os._exit(0)
            if m.get('cmd') == 'stop':
                return True
            self.pending.append(m)

    def next_message(self):
        if self.pending:
            return self.pending.pop(0)
        return self.inbox.get()

    def serve(self):
        while True:
            msg = self.next_message()
            if msg is None or msg.get('cmd') == 'exit':
                return
            if msg.get('cmd') == 'stop':
                continue  # a stop that arrived after its epoch ended
            mid = msg.get('id')
            handler = getattr(self, 'cmd_' + str(msg.get('cmd', '')).replace('-', '_'), None)
            if handler is None:
                send({'id': mid, 'ok': False, 'error': {'code': 'protocol', 'message': f'unknown command {msg.get("cmd")!r}'}})
                continue
            try:
                reply = handler(msg)
                send({'id': mid, 'ok': True, **reply})
            except WorkerError as err:
                send({'id': mid, 'ok': False, 'error': {'code': err.code, 'message': str(err), **err.details}})
            except Exception as err:  # report, keep serving: the parent decides what a failure means
                import traceback
                traceback.print_exc(file=sys.stderr)
                send({'id': mid, 'ok': False, 'error': {'code': 'internal', 'message': f'{type(err).__name__}: {err}'}})


def read_stdin(inbox):
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            inbox.put(json.loads(line))
        except ValueError:
            log(f'ignoring a line that is not JSON: {line[:80]!r}')
    # The parent closed our stdin: it is gone or done with us. Exit even mid-epoch.
    os._exit(0)


def main():
    die_with_parent()
    args = sys.argv[1:]
    opts = dict(a.split('=', 1) for a in args if a.startswith('--') and '=' in a)
    threads = int(opts.get('--threads', '0')) or (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    # Weights feeding channels the proximal step killed decay toward zero through denormal floats,
    # which x86 computes ~100× slower; below 1e-38 they matter to nothing.
    torch.set_flush_denormal(True)
    want = opts.get('--device', 'auto')
    if want == 'auto':
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    else:
        device = torch.device(want)
    worker = Worker(device, threads)
    send({
        'type': 'hello', 'ok': True, 'protocol': PROTOCOL, 'torch': torch.__version__,
        'python': sys.version.split()[0], 'executable': sys.executable, 'threads': torch.get_num_threads(),
        'device': str(device), 'cuda': torch.cuda.is_available(),
        'cudaDevice': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    })
    threading.Thread(target=read_stdin, args=(worker.inbox,), daemon=True).start()
    worker.serve()


if __name__ == '__main__':
    main()
