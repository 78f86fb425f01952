#!/usr/bin/env python3
"""The reference of test/bench/train-step.ts: the same network written the way a PyTorch user would
write it (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Linear, torch's own padding and running
statistics), trained by a plain loop on one in-memory random batch with Adam. No protocol, no data
feeding, no proximal step. Reads the network spec our engine builds (a JSON file), prints JSON.

    python3 plain-torch.py SPEC.json --batch 64 --steps 20 --warmup 3 --threads 0 --device auto
"""
import argparse
import json
import os
import statistics
import time

import torch
import torch.nn as nn


class Plain(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.mods = nn.ModuleDict()
        self.kind = {}
        shapes = {}
        h, w, c = spec['inputShape']
        shapes[spec['input']] = (c, h, w)
        for call in spec['calls']:
            if call['id'] == spec['input']:
                continue
            layer = next(l for l in spec['layers'] if l['name'] == call['layer'])
            ins = [shapes[i] for i in call['inputs']]
            key = layer['name'].replace('.', '_')
            self.kind[call['id']] = (layer, key)
            a = layer['attrs']
            k = layer['kind']
            cin = ins[0][0]
            if k in ('conv2d', 'depthwise', 'separable'):
                kh, kw = a['kernelSize']
                pad = (kh // 2, kw // 2) if a['padding'] == 'same' else 0
                if k == 'conv2d':
                    cout = a['filters']
                    m = nn.Conv2d(cin, cout, (kh, kw), tuple(a['strides']), pad, bias=a['useBias'])
                elif k == 'depthwise':
                    cout = cin * a['depthMultiplier']
                    m = nn.Conv2d(cin, cout, (kh, kw), tuple(a['strides']), pad, groups=cin, bias=a['useBias'])
                else:
                    mid = cin * a['depthMultiplier']
                    cout = a['filters']
                    m = nn.Sequential(nn.Conv2d(cin, mid, (kh, kw), tuple(a['strides']), pad, groups=cin, bias=False), nn.Conv2d(mid, cout, 1, bias=a['useBias']))
                self.mods[key] = nn.Sequential(m, act(a['activation']))
                oh = -(-ins[0][1] // a['strides'][0]) if a['padding'] == 'same' else (ins[0][1] - kh) // a['strides'][0] + 1
                ow = -(-ins[0][2] // a['strides'][1]) if a['padding'] == 'same' else (ins[0][2] - kw) // a['strides'][1] + 1
                shapes[call['id']] = (cout, oh, ow)
            elif k == 'batchnorm':
                self.mods[key] = nn.BatchNorm2d(cin, eps=a['epsilon'], momentum=1 - a['momentum']) if len(ins[0]) == 3 else nn.BatchNorm1d(cin, eps=a['epsilon'], momentum=1 - a['momentum'])
                shapes[call['id']] = ins[0]
            elif k == 'activation':
                self.mods[key] = act(a['activation'])
                shapes[call['id']] = ins[0]
            elif k == 'dense':
                self.mods[key] = nn.Sequential(nn.Linear(cin if len(ins[0]) == 1 else cin, a['units'], bias=a['useBias']), act(a['activation'], dim=1))
                shapes[call['id']] = (a['units'],)
            elif k == 'globalpool':
                self.mods[key] = nn.Sequential(nn.AdaptiveAvgPool2d(1) if a['mode'] == 'avg' else nn.AdaptiveMaxPool2d(1), nn.Flatten())
                shapes[call['id']] = (cin,)
            elif k == 'pool':
                kh, kw = a['poolSize']
                mod = nn.MaxPool2d if a['mode'] == 'max' else nn.AvgPool2d
                self.mods[key] = mod((kh, kw), tuple(a['strides']))
                shapes[call['id']] = (cin, (ins[0][1] - kh) // a['strides'][0] + 1, (ins[0][2] - kw) // a['strides'][1] + 1)
            elif k == 'flatten':
                self.mods[key] = nn.Flatten()
                shapes[call['id']] = (cin * ins[0][1] * ins[0][2],)
            elif k == 'dropout':
                self.mods[key] = nn.Dropout(a.get('rate', 0.0))
                shapes[call['id']] = ins[0]
            elif k == 'elementwise':
                shapes[call['id']] = ins[0]
            elif k == 'concat':
                shapes[call['id']] = (sum(s[0] for s in ins),) + tuple(ins[0][1:])
            else:
                raise SystemExit(f'plain-torch: no plain module for {k}')

    def forward(self, x):
        env = {self.spec['input']: x}
        for call in self.spec['calls']:
            if call['id'] == self.spec['input']:
                continue
            layer, key = self.kind[call['id']]
            ins = [env[i] for i in call['inputs']]
            if layer['kind'] == 'elementwise':
                y = ins[0]
                for t in ins[1:]:
                    y = y + t
            elif layer['kind'] == 'concat':
                y = torch.cat(ins, 1)
            else:
                y = self.mods[key](ins[0])
            env[call['id']] = y
        return env[self.spec['output']]


def act(name, dim=1):
    n = name.lower()
    return {'relu': nn.ReLU(), 'relu6': nn.ReLU6(), 'linear': nn.Identity(), 'sigmoid': nn.Sigmoid(), 'tanh': nn.Tanh(), 'softmax': nn.Identity()}[n]


def main():
    p = argparse.ArgumentParser()
    p.add_argument('spec')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--device', default='auto')
    o = p.parse_args()
    torch.set_num_threads(o.threads or os.cpu_count() or 1)
    device = torch.device(('cuda' if torch.cuda.is_available() else 'cpu') if o.device == 'auto' else o.device)
    spec = json.load(open(o.spec))
    net = Plain(spec).to(device).train()
    h, w, c = spec['inputShape']
    classes = 10
    x = torch.rand(o.batch, c, h, w, device=device)
    y = torch.randint(0, classes, (o.batch,), device=device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()  # the softmax head as logits: what a PyTorch user writes
    times = []
    for i in range(o.warmup + o.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        loss.item()  # one sync per step, as any loop that logs its loss
        if device.type == 'cuda':
            torch.cuda.synchronize()
        if i >= o.warmup:
            times.append((time.perf_counter() - t0) * 1000)
    med = statistics.median(times)
    print(json.dumps({'msPerStep': {'median': med, 'min': min(times), 'max': max(times)}, 'imagesPerSec': o.batch / (med / 1000), 'steps': o.steps, 'device': str(device), 'threads': torch.get_num_threads(), 'torch': torch.__version__}))


if __name__ == '__main__':
    main()
