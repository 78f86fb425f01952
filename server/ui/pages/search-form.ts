/**
 * The form that starts a latency-targeted search: model, dataset, device and runtime, the target
 * in ms with the seed's measured (and predicted) latency shown beside it, strength and epochs.
 * The server checks the request whole; each refusal is shown beside the field it concerns.
 */
import { SEARCH_OPTION_DEFAULTS } from '../../../src/morph/search-defaults.ts';
import type { VNode } from 'preact';
import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api, fieldErrors, followJob } from '../api.ts';
import { Card, ErrorNote, Field, Progress } from '../components.ts';
import { defaultRuntime, DevicePicker } from '../device-picker.ts';
import { ms, shape } from '../format.ts';
import { navigate, useLoad, type Route } from '../hooks.ts';
import type { DatasetInfo, DatasetsResponse, DeviceView, JobView, ModelsResponse, ModelSummary, NetworksResponse, PredictResponse, SearchView, SeedsResponse } from '../../contract/index.ts';

interface FormState {
  model: string;
  dataset: string;
  customDataset: string;
  trainLimit: string;
  testLimit: string;
  deviceId: string;
  runtime: string;
  targetMs: string;
  strength: string;
  shrinkEpochs: string;
  finalEpochs: string;
  baseline: boolean;
  batchSize: string;
  divisor: string;
  learningRate: string;
  profileGrid: string;
  quickMeasure: boolean;
  /** '' = the server's default (auto). */
  engine: string;
}

const CUSTOM = 'custom';

/** A synthetic dataset shaped like the model's input and output. */
function syntheticFor(m: ModelSummary | undefined): string | null {
  if (!m || m.inputShape.length !== 3 || m.inputShape.some((d) => d === null) || !m.outputs || m.outputs < 2) return null;
  const [h, w, c] = m.inputShape as number[];
  return `synthetic:h=${h},w=${w},c=${c},classes=${m.outputs}`;
}

/** A number field's value, or undefined when empty; text that is not a number is sent as is, for the server to refuse. */
function num(v: string): number | string | undefined {
  const t = v.trim();
  if (t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

function requestOf(f: FormState, models: readonly ModelSummary[]): Record<string, unknown> {
  const m = models.find((x) => x.ref === f.model);
  const dataset = f.dataset === CUSTOM ? f.customDataset.trim() : f.dataset;
  const options = Object.fromEntries(
    Object.entries({
      strength: num(f.strength),
      shrinkEpochs: num(f.shrinkEpochs),
      finalEpochs: num(f.finalEpochs),
      baseline: f.baseline,
      batchSize: num(f.batchSize),
      divisor: num(f.divisor),
      learningRate: num(f.learningRate),
      profileGrid: num(f.profileGrid),
      measureProtocol: f.quickMeasure ? 'quick' : undefined,
      engine: f.engine === '' ? undefined : f.engine,
    }).filter(([, v]) => v !== undefined),
  );
  return {
    ...(m === undefined ? {} : m.ref.startsWith('seed:') ? { seed: m.ref.slice(5) } : { modelId: m.id }),
    data: Object.fromEntries(Object.entries({ dataset, trainLimit: num(f.trainLimit), testLimit: num(f.testLimit) }).filter(([, v]) => v !== undefined)),
    cost: 'latency',
    ...(f.deviceId ? { deviceId: f.deviceId } : {}),
    ...(f.runtime ? { runtime: f.runtime } : {}),
    ...(f.targetMs.trim() !== '' ? { targetMs: num(f.targetMs) } : {}),
    options,
  };
}

/** The API reports a missing model as `model`, `modelId` or `seed`; the form has one field. */
function formErrors(err: unknown): Record<string, string> {
  const e = fieldErrors(err);
  for (const k of ['modelId', 'seed']) if (e[k] && !e.model) e.model = e[k];
  if (e.target && !e.targetMs) e.targetMs = e.target;
  return e;
}

const SHOWN = ['model', 'data.dataset', 'data.trainLimit', 'data.testLimit', 'deviceId', 'runtime', 'targetMs', 'options.strength', 'options.shrinkEpochs', 'options.finalEpochs', 'options.baseline', 'options.batchSize', 'options.divisor', 'options.learningRate', 'options.profileGrid', 'options.measureProtocol', 'options.engine'];

/** The seed's latency on the chosen device: measured end to end if it was, and predicted if the tables cover it. */
function SeedLatency(props: { model: ModelSummary | undefined; deviceId: string; runtime: string; onUse: (ms: number) => void }): VNode | null {
  const [version, setVersion] = useState(0);
  const [job, setJob] = useState<JobView | null>(null);
  const [error, setError] = useState<unknown>(null);
  const m = props.model;
  const ready = m !== undefined && props.deviceId !== '' && props.runtime !== '';
  const nets = useLoad(() => (ready ? api<NetworksResponse>(`/api/networks?deviceId=${encodeURIComponent(props.deviceId)}&runtime=${props.runtime}`) : Promise.resolve(undefined)), [props.deviceId, props.runtime, m?.id, version]);
  const modelField = async (): Promise<unknown> => (m!.ref.startsWith('seed:') ? m!.ref : api(`/api/models/${m!.id}/model.json`));
  const predicted = useLoad(async () => (ready ? api<PredictResponse>('/api/predict', { body: { deviceId: props.deviceId, runtime: props.runtime, model: await modelField() } }).catch(() => undefined) : undefined), [props.deviceId, props.runtime, m?.id, version]);
  if (!ready) return null;
  const measured = nets.data?.networks.filter((n) => n.modelId === m.id).at(-1);
  const measure = async (): Promise<void> => {
    setError(null);
    try {
      const first = await api<JobView>('/api/measure', { body: { deviceId: props.deviceId, runtime: props.runtime, model: await modelField() } });
      await followJob(first, setJob);
    } catch (err) {
      setError(err);
    } finally {
      setVersion((v) => v + 1);
    }
  };
  const busy = job !== null && !['done', 'failed', 'cancelled'].includes(job.state);
  return html`<div class="seed-latency" data-seed-measured=${measured ? measured.measuredMs.toFixed(6) : ''}>
    <span>Seed on this device: <strong>${measured ? `${ms(measured.measuredMs)} measured` : 'not measured yet'}</strong>${predicted.data ? `, ${ms(predicted.data.predictedMs)} predicted` : ''}.</span>
    ${measured
      ? html`<span class="quick-targets">${[0.5, 0.7].map((f) => html`<button type="button" class="small" data-target-fraction=${f} onClick=${() => props.onUse(Number((measured.measuredMs * f).toPrecision(3)))}>${Math.round(f * 100)}%</button>`)}</span>`
      : html`<button type="button" class="small" data-action="measure-seed" disabled=${busy} onClick=${measure}>${busy ? 'Measuring…' : 'Measure it now'}</button>`}
    ${busy ? html`<${Progress} value=${null} label=${`measuring: ${job!.state}${job!.waiting ? ` (${job!.waiting})` : ''}`} />` : null}
    <${ErrorNote} error=${error} />
  </div>`;
}

export function SearchForm(props: { route: Route; devices: readonly DeviceView[] }): VNode {
  const seeds = useLoad(() => api<SeedsResponse>('/api/seeds'), []);
  const uploads = useLoad(() => api<ModelsResponse>('/api/models'), []);
  const datasets = useLoad(() => api<DatasetsResponse>('/api/datasets'), []);
  const models: ModelSummary[] = [
    ...(uploads.data?.models ?? []).map((u) => ({ ref: u.id, id: u.id, name: u.name, layers: u.layers, params: u.params, macs: u.macs, inputShape: u.inputShape, outputs: u.outputs })),
    ...(seeds.data?.seeds ?? []),
  ];
  const firstDevice = props.devices.find((d) => d.online) ?? props.devices[0];
  const [f, setF] = useState<FormState>(() => ({
    model: props.route.query.get('model') ?? '',
    dataset: '',
    customDataset: '',
    trainLimit: '',
    testLimit: '',
    deviceId: '',
    runtime: '',
    targetMs: '',
    // Empty: the search chooses the strength itself (a short trial of a few strengths, on validation data).
    strength: SEARCH_OPTION_DEFAULTS.strength === null ? '' : String(SEARCH_OPTION_DEFAULTS.strength),
    shrinkEpochs: String(SEARCH_OPTION_DEFAULTS.shrinkEpochs),
    finalEpochs: String(SEARCH_OPTION_DEFAULTS.finalEpochs),
    baseline: true,
    batchSize: '',
    divisor: '',
    learningRate: '',
    profileGrid: '',
    quickMeasure: false,
    engine: '',
  }));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [formError, setFormError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  // Defaults that depend on what has loaded: the first model, a dataset that fits it, the first online device.
  const model = models.find((m) => m.ref === f.model) ?? models[0];
  const synthetic = syntheticFor(model);
  const fits = (d: DatasetInfo): boolean => model !== undefined && d.available && model.inputShape.join() === d.imageShape.join() && model.outputs === d.classes;
  const datasetChoices = [...(synthetic ? [{ value: synthetic, label: `synthetic, shaped like the model (${shape(model!.inputShape)}, ${model!.outputs} classes)` }] : []), ...(datasets.data?.datasets ?? []).map((d) => ({ value: d.name, label: `${d.name} (${shape(d.imageShape)}, ${d.classes} classes${d.available ? '' : ', not installed'})${fits(d) ? '' : model ? ' — does not fit this model' : ''}` })), { value: CUSTOM, label: 'other (type a spec)…' }];
  const dataset = f.dataset || (datasets.data?.datasets.find(fits)?.name ?? synthetic ?? 'synthetic');
  const deviceId = f.deviceId || firstDevice?.id || '';
  const runtime = f.runtime || defaultRuntime(props.devices.find((d) => d.id === deviceId));
  const state: FormState = { ...f, model: model?.ref ?? '', dataset, deviceId, runtime };

  const set = (patch: Partial<FormState>): void => setF((s) => ({ ...s, ...state, ...patch }));
  const input = (key: keyof FormState) => (e: Event) => set({ [key]: (e.target as HTMLInputElement).value } as Partial<FormState>);

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setFormError(null);
    try {
      const view = await api<SearchView>('/api/searches', { body: requestOf(state, models) });
      navigate(['searches', view.id]);
    } catch (err) {
      const fe = formErrors(err);
      setErrors(fe);
      // Bring the first refused field into view (the button is at the bottom of a long form).
      requestAnimationFrame(() => document.querySelector('.search-form .field.invalid')?.scrollIntoView({ block: 'center' }));
      // Anything not shown beside a field is shown above the button.
      if (!SHOWN.some((k) => k in fe)) setFormError(err);
    } finally {
      setBusy(false);
    }
  };

  const text = (key: keyof FormState, name: string, label: string, hint?: string, attrs: Record<string, string> = {}): VNode =>
    html`<${Field} label=${label} name=${name} error=${errors[name]} hint=${hint}>
      <input name=${name} inputmode="decimal" value=${state[key] as string} onInput=${input(key)} ...${attrs} />
    <//>`;

  return html`<div class="page" data-page="search-form">
    <p class="crumbs"><a href="#/searches">Searches</a> /</p>
    <header class="page-head"><h1>New latency search</h1></header>
    <form class="search-form" onSubmit=${submit} novalidate>
      <${Card} title="What to search">
        <${Field} label="Model" name="model" error=${errors.model} hint=${model ? `${model.layers} layers, input ${shape(model.inputShape)}, ${model.outputs ?? '?'} classes` : undefined}>
          <select name="model" value=${state.model} onChange=${(e: Event) => set({ model: (e.target as HTMLSelectElement).value, dataset: '' })}>
            ${models.map((m) => html`<option value=${m.ref}>${m.name} (${m.ref.startsWith('seed:') ? 'seed' : 'upload'})</option>`)}
          </select>
        <//>
        <div class="field-row">
          <${Field} label="Dataset" name="data.dataset" error=${errors['data.dataset']} wide=${true}>
            <select name="data.dataset" value=${datasetChoices.some((c) => c.value === dataset) ? dataset : CUSTOM} onChange=${(e: Event) => set({ dataset: (e.target as HTMLSelectElement).value })}>
              ${datasetChoices.map((c) => html`<option value=${c.value}>${c.label}</option>`)}
            </select>
            ${dataset === CUSTOM ? html`<input name="data.dataset.custom" placeholder="synthetic:h=28,w=28,c=1,classes=10" value=${state.customDataset} onInput=${input('customDataset')} />` : null}
          <//>
        </div>
        <div class="field-row">
          ${text('trainLimit', 'data.trainLimit', 'Training images (at most)', 'empty: all of them')}
          ${text('testLimit', 'data.testLimit', 'Test images (at most)', 'empty: all of them')}
        </div>
      <//>
      <${Card} title="Where, and how fast">
        <${DevicePicker} idPrefix="search" devices=${props.devices} deviceId=${deviceId} runtime=${runtime} errors=${errors} onChange=${(d: string, r: string) => set({ deviceId: d, runtime: r })} />
        <${Field} label="Target latency (ms per run)" name="targetMs" error=${errors.targetMs} hint=${html`<${SeedLatency} model=${model} deviceId=${deviceId} runtime=${runtime} onUse=${(v: number) => set({ targetMs: String(v) })} />`}>
          <input name="targetMs" inputmode="decimal" placeholder="e.g. 2.5" value=${state.targetMs} onInput=${input('targetMs')} />
        <//>
      <//>
      <${Card} title="Training">
        <div class="field-row">
          ${text('strength', 'options.strength', 'Strength', 'λ = strength / the seed’s latency; higher prunes harder. Empty: chosen by the search (5, 20 or 80, on validation accuracy)')}
          ${text('shrinkEpochs', 'options.shrinkEpochs', 'Shrink epochs')}
          ${text('finalEpochs', 'options.finalEpochs', 'Final epochs')}
        </div>
        <${Field} label="Baselines" name="options.baseline" error=${errors['options.baseline']}>
          <span class="check"><input type="checkbox" name="options.baseline" checked=${state.baseline} onChange=${(e: Event) => set({ baseline: (e.target as HTMLInputElement).checked })} /> also train the uniformly shrunk seed and FLOP-MorphNet at the same measured latency</span>
        <//>
        <details>
          <summary>More options</summary>
          <div class="field-row">
            ${text('batchSize', 'options.batchSize', 'Batch size', 'default 64')}
            ${text('divisor', 'options.divisor', 'Width divisor', 'widths are multiples of it; default 4')}
            ${text('learningRate', 'options.learningRate', 'Learning rate', 'default 0.05 (SGD)')}
            ${text('profileGrid', 'options.profileGrid', 'Profile grid', 'widths per axis profiled, 2–16; default 6')}
          </div>
          <${Field} label="Training engine" name="options.engine" error=${errors['options.engine']}>
            <select name="options.engine" value=${state.engine} onChange=${(e: Event) => set({ engine: (e.target as HTMLSelectElement).value })}>
              <option value="">auto (PyTorch when the server has it, else tfjs)</option>
              <option value="torch">torch (PyTorch worker)</option>
              <option value="tfjs">tfjs (in the server, wasm)</option>
            </select>
          <//>
          <${Field} label="Measurement" name="options.measureProtocol" error=${errors['options.measureProtocol']}>
            <span class="check"><input type="checkbox" name="options.measureProtocol" checked=${state.quickMeasure} onChange=${(e: Event) => set({ quickMeasure: (e.target as HTMLInputElement).checked })} /> quick protocol (fewer samples: faster, noisier)</span>
          <//>
        </details>
      <//>
      ${formError ? html`<${ErrorNote} error=${formError} />` : null}
      ${formError === null && Object.keys(errors).length > 0 ? html`<div class="notice error" role="alert" data-form-error>The server refused the search: see the marked field${Object.keys(errors).length > 1 ? 's' : ''}.</div>` : null}
      <div class="actions"><button type="submit" class="primary" disabled=${busy} data-action="start-search">${busy ? 'Checking…' : 'Start the search'}</button></div>
    </form>
  </div>`;
}

