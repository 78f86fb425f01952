/**
 * Malformed inputs for the daemon's fuzz test (test/server/fuzz.test.ts), drawn from a seeded
 * PRNG so that a failure can be replayed. Every generator here makes inputs that MUST be
 * refused: a valid template with at least one field replaced by a value of a wrong type or out of
 * range, or text that is not the JSON the endpoint takes. (A generator that could produce a valid
 * request would let the test store something; the test then fails and names the input.)
 */
import { gzipSync } from 'node:zlib';
import { seedModel } from '../../src/seeds/index.ts';

/** mulberry32: a small, fast, seedable PRNG (uniform in [0, 1)). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Draw {
  constructor(readonly rand: () => number) {}
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.rand() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.rand() * items.length)];
  }
  chance(p: number): boolean {
    return this.rand() < p;
  }
  /** A random printable or control string. */
  text(maxLen: number): string {
    const n = this.int(0, maxLen);
    let s = '';
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.chance(0.1) ? this.int(0, 31) : this.chance(0.05) ? this.int(0x80, 0x2fff) : this.int(32, 126));
    return s;
  }
}

/**
 * A JSON *text* fragment (not a value): raw text lets a body hold what JSON.stringify cannot
 * write (NaN, Infinity, 1e999, lone surrogates) or would choke on (deep nesting).
 */
export type Raw = { readonly raw: string };
const raw = (text: string): Raw => ({ raw: text });

export function nested(depth: number, open = '[', close = ']'): string {
  return `${open.repeat(depth)}${close.repeat(depth)}`;
}

/** Values of every JSON type and some that are not JSON at all. */
export function weird(d: Draw): unknown {
  return d.pick<() => unknown>([
    () => null,
    () => true,
    () => false,
    () => 0,
    () => -1,
    () => d.int(-1e9, 1e9) + 0.5,
    () => 1e308,
    () => -1e308,
    () => Number.MAX_SAFE_INTEGER + 2,
    () => raw('1e999'),
    () => raw('-1e999'),
    () => raw('NaN'),
    () => raw('Infinity'),
    () => raw('-0'),
    () => raw('1e-400'),
    () => raw('0x10'),
    () => raw('"\\ud800"'),
    () => raw('"\\u0000"'),
    () => '',
    () => d.text(40),
    () => 'x'.repeat(d.int(300, 5000)),
    () => [],
    () => [null],
    () => Array.from({ length: d.int(1, 2000) }, () => 0),
    () => ({}),
    () => ({ __proto__: { polluted: true } }),
    () => raw('{"__proto__":{"polluted":true}}'),
    () => raw('{"constructor":{"prototype":{"polluted":true}}}'),
    () => raw(nested(d.int(65, 3000))),
    () => {
      const n = d.int(65, 3000);
      return raw(`${'{"a":'.repeat(n)}1${'}'.repeat(n)}`);
    },
  ])();
}

/** JSON text of `value`, with Raw fragments spliced in verbatim. */
export function toText(value: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(value, (_k, v: unknown) => {
    if (v !== null && typeof v === 'object' && 'raw' in (v as object) && Object.keys(v as object).length === 1) {
      raws.push((v as Raw).raw);
      return `\u0001RAW${raws.length - 1}\u0001`;
    }
    return v;
  });
  return (text ?? 'undefined').replace(/"\\u0001RAW(\d+)\\u0001"/g, (_m, i: string) => raws[Number(i)]);
}

/** Sets `value` at a dotted path of a deep copy of `obj`. */
function setPath(obj: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(obj);
  const keys = path.split('.');
  let at: Record<string, unknown> = copy;
  for (const k of keys.slice(0, -1)) {
    if (at[k] === null || typeof at[k] !== 'object') at[k] = {};
    at = at[k] as Record<string, unknown>;
  }
  at[keys[keys.length - 1]] = value;
  return copy;
}

/** A field and values it can never take (each checked to be refused). */
interface FieldRule {
  readonly path: string;
  readonly bad: readonly unknown[];
}

const NOT_STRINGS = [0, 1, true, null, [], {}, raw('NaN'), raw('1e999')];
const POSITIVE_INT_BAD = [0, -1, 1.5, '4', null, true, [], {}, 1e12, raw('1e999'), raw('NaN'), raw('-0.5')];

export interface BodyCase {
  readonly method: 'POST';
  readonly path: string;
  readonly body: string;
  readonly contentType?: string;
}

/** A strict-schema endpoint: a template plus field rules; each body breaks ≥ 1 rule. */
interface Endpoint {
  readonly path: string;
  readonly template: Record<string, unknown>;
  readonly rules: readonly FieldRule[];
  /** Whether an unknown top-level field is refused. */
  readonly strict: boolean;
}

function endpoints(deviceId: string): Endpoint[] {
  const model = { path: 'model', bad: [0, 1, true, null, [], raw('NaN'), '', 'alexnet', 'seed:', 'seed:lenet', 'x'.repeat(101), { hello: 'world' }, { class_name: 'Sequential' }, { format: 'layers-model', modelTopology: null }] };
  const deviceRuntime = [
    { path: 'deviceId', bad: [...NOT_STRINGS, '', 'd'.repeat(65)] },
    { path: 'runtime', bad: [...NOT_STRINGS, '', 'onnx', 'TFJS-WASM', 'tfjs-wasm '] },
  ];
  const measure = [
    { path: 'measure', bad: [1, 'fast', [], true, { bogus: 1 }] },
    { path: 'measure.maxMs', bad: [0, -5, 600_001, 'x', null, raw('1e999'), raw('NaN')] },
    { path: 'measure.warmupRuns', bad: POSITIVE_INT_BAD },
    { path: 'measure.maxCv', bad: [0, -1, 11, 'low', raw('Infinity')] },
  ];
  return [
    {
      path: '/api/profile',
      template: { deviceId, runtime: 'tfjs-wasm', model: 'vgg', grid: { maxPerAxis: 2 }, refine: false, measure: { maxMs: 100 } },
      rules: [
        ...deviceRuntime,
        model,
        ...measure,
        { path: 'grid', bad: [1, 'coarse', [], true] },
        { path: 'grid.maxPerAxis', bad: [1, 65, 1e9, ...POSITIVE_INT_BAD] },
        { path: 'grid.step', bad: [1025, ...POSITIVE_INT_BAD] },
        { path: 'grid.maxScale', bad: [0, 5, -1, 'x', raw('1e999')] },
        { path: 'grid.seedOnly', bad: [1, 'yes', null, []] },
        { path: 'force', bad: [1, 'yes', null, []] },
        { path: 'refine', bad: [0, 'no', null, {}] },
      ],
      strict: true,
    },
    {
      path: '/api/measure',
      template: { deviceId, runtime: 'tfjs-wasm', model: 'vgg', measure: { maxMs: 100 } },
      rules: [...deviceRuntime, model, ...measure],
      strict: true,
    },
    {
      path: '/api/predict',
      template: { deviceId, runtime: 'tfjs-wasm', model: 'vgg' },
      rules: [...deviceRuntime, model],
      strict: true,
    },
    {
      path: '/api/searches',
      // Valid as it stands (a FLOP search); every case breaks a rule, so none is created.
      template: { seed: 'vgg', data: { dataset: 'synthetic', trainLimit: 64, testLimit: 32 }, cost: 'flops', target: { fraction: 0.5 }, options: { shrinkEpochs: 1, finalEpochs: 1 } },
      rules: [
        { path: 'seed', bad: [...NOT_STRINGS, '', 'alexnet', 'x'.repeat(101)] },
        { path: 'data', bad: [null, 1, 'synthetic', []] },
        { path: 'data.dataset', bad: [...NOT_STRINGS, '', 'x'.repeat(201), '/etc/passwd', '../../../etc', 'cifar10', 'fashion-mnist\u0000'] },
        { path: 'data.trainLimit', bad: [1, 10_000_001, ...POSITIVE_INT_BAD] },
        { path: 'data.imageShape', bad: [[28, 28], [28, 28, 2], [0, 28, 1], [1025, 28, 1], 'x', [28, 28, 1, 1]] },
        { path: 'cost', bad: [...NOT_STRINGS, 'latency', 'energy', ''] },
        { path: 'target', bad: [null, 0.5, 'half', [], { fraction: 0.5, value: 3 }, { percent: 50 }] },
        { path: 'target.fraction', bad: [0, 1, -0.5, 2, 'half', null, raw('NaN'), raw('1e999')] },
        { path: 'targetMs', bad: [5, -5, 0, 'x', raw('1e999')] },
        { path: 'deviceId', bad: [...NOT_STRINGS, '', 'd'.repeat(65), 'd-ffffffffffff'] },
        { path: 'modelId', bad: [...NOT_STRINGS, 'm-ffffffffffffffff', ''] },
        { path: 'options', bad: [1, 'fast', [], null] },
        { path: 'options.shrinkEpochs', bad: [201, ...POSITIVE_INT_BAD] },
        { path: 'options.learningRate', bad: [0, -1, 11, 'x', raw('Infinity')] },
        { path: 'options.optimizer', bad: ['rmsprop', 1, null, ''] },
        { path: 'options.backend', bad: ['webgpu', 1, null] },
        { path: 'options.seed', bad: [-1, 2 ** 31, 1.5, 'x'] },
      ],
      strict: true,
    },
    {
      path: '/api/pairings',
      template: {},
      rules: [{ path: 'expiresInS', bad: [0, 59, 86_401, 1.5, '600', null, true, [], {}, raw('1e999'), raw('NaN')] }],
      strict: true,
    },
  ];
}

/** A seed model with one change that the graph parser must refuse. */
function brokenModel(d: Draw, base: Record<string, any>): unknown {
  const m = structuredClone(base) as { modelTopology: { class_name: string; config: { layers: any[]; input_layers?: unknown; output_layers?: unknown } } };
  const layers = m.modelTopology.config.layers;
  const k = d.int(1, layers.length - 1);
  switch (d.int(0, 12)) {
    case 0:
      m.modelTopology.config.layers = d.pick(['x', 5, null, {}, true]) as any;
      break;
    case 1:
      (m.modelTopology as any).class_name = d.pick([5, null, '', 'Transformer', [], {}]);
      break;
    case 2:
      layers[k].inbound_nodes = [[[`ghost_${d.int(0, 1e6)}`, 0, 0, {}]]];
      break;
    case 3:
      layers[0].config.batch_input_shape = d.pick([[null, -5, 28, 1], [null, 'a', 28, 1], 'x', [null, 0, 28, 1], [null, 28, 28, 1e12]]);
      break;
    case 4:
      layers[k].name = layers[k - 1].name;
      break;
    case 5:
      layers[1].inbound_nodes = [[[layers[layers.length - 1].name, 0, 0, {}]]];
      break;
    case 6:
      delete (m as any).modelTopology;
      break;
    case 7:
      return { format: 'layers-model', modelTopology: { class_name: 'Sequential', config: { name: 'huge', layers: Array.from({ length: 2001 }, (_, i) => ({ class_name: 'Dense', config: { units: 4, name: `d${i}` } })) } } };
    case 8:
      (m.modelTopology.config as any).output_layers = [[`ghost_${d.int(0, 1e6)}`, 0, 0]];
      break;
    case 9:
      layers[k].inbound_nodes = d.pick(['x', 5, [[['input']]], [[[null, 0, 0]]], [[[layers[0].name, 7, 0, {}]]]]);
      break;
    case 10:
      return d.pick([{}, { format: 'layers-model' }, { class_name: 'Model' }, { class_name: 'Sequential', config: { layers: [] } }, { modelTopology: [] }, { weightsManifest: [] }]);
    case 11:
      layers[k] = d.pick([null, 5, 'layer', [], { name: 'nameless' }]);
      break;
    default:
      return { [d.text(10) || 'k']: weird(d), [`z${d.int(0, 9)}`]: weird(d) };
  }
  return m;
}

/**
 * One malformed POST body for one of the JSON endpoints. `deviceId` is a device the server
 * knows (so the checks after the device lookup run too).
 */
export class BodyFuzzer {
  readonly #d: Draw;
  readonly #endpoints: Endpoint[];
  readonly #model = seedModel('vgg') as unknown as Record<string, unknown>;

  constructor(d: Draw, deviceId: string) {
    this.#d = d;
    this.#endpoints = endpoints(deviceId);
  }

  next(): BodyCase {
    const d = this.#d;
    const kind = d.int(0, 99);
    if (kind < 8) {
      // Not JSON, or not an object, whatever the endpoint.
      const path = d.pick([...this.#endpoints.map((e) => e.path), '/api/models']);
      const body = d.pick<() => string>([
        () => d.text(200),
        () => '{"deviceId": ',
        () => '{',
        () => ']',
        () => '"just a string"',
        () => String(d.int(-1e6, 1e6)),
        () => 'null',
        () => 'NaN',
        () => '{"a":1,}',
        () => "{'single': 'quotes'}",
        () => '\ufeff{"bom": true}',
        () => nested(d.int(65, 100_000)),
        () => nested(d.int(65, 20_000), '{"x":', '}'),
      ])();
      return { method: 'POST', path, body };
    }
    if (kind < 20) {
      const model = brokenModel(d, this.#model);
      if (d.chance(0.5)) return { method: 'POST', path: '/api/models', body: toText(model) };
      const e = this.#endpoints[d.int(0, 2)];
      return { method: 'POST', path: e.path, body: toText({ ...e.template, model }) };
    }
    const e = d.pick(this.#endpoints);
    let body: Record<string, unknown> = structuredClone(e.template);
    // Any values in up to two fields (these alone might be valid: {} for an all-optional object)…
    for (let i = d.int(0, 2); i > 0; i--) body = setPath(body, d.pick(e.rules).path, weird(d));
    // …then, last, one break that is always refused: a listed bad value, or an unknown field.
    if (e.strict && d.chance(0.12)) {
      body[d.pick(['extra', 'constructor', 'deviceID', 'Model', `x${d.int(0, 1e6)}`])] = weird(d);
    } else {
      const rule = d.pick(e.rules);
      body = setPath(body, rule.path, d.pick(rule.bad));
    }
    return { method: 'POST', path: e.path, body: toText(body) };
  }
}

/** A gzip body that inflates past the body limit (a zip bomb). */
export function gzipBomb(bytes: number): Buffer {
  return gzipSync(Buffer.alloc(bytes, 0x20));
}
