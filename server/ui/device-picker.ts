/** A device select and a runtime select (the device's runtimes), shared by several pages. */
import type { VNode } from 'preact';
import { html } from 'htm/preact';
import { Field } from './components.ts';
import type { DeviceView } from '../contract/index.ts';

export function runtimesOf(d: DeviceView | undefined): string[] {
  return (d?.runtimes ?? []).map((r) => r.name);
}

/** The runtime to pick by default: tfjs-wasm where the device has it (every agent kind does). */
export function defaultRuntime(d: DeviceView | undefined): string {
  const names = runtimesOf(d);
  return names.includes('tfjs-wasm') ? 'tfjs-wasm' : (names[0] ?? '');
}

export interface DevicePickerProps {
  readonly devices: readonly DeviceView[];
  readonly deviceId: string;
  readonly runtime: string;
  readonly onChange: (deviceId: string, runtime: string) => void;
  readonly errors?: Record<string, string>;
  readonly idPrefix: string;
}

export function DevicePicker(props: DevicePickerProps): VNode {
  const device = props.devices.find((d) => d.id === props.deviceId);
  return html`<div class="field-row">
    <${Field} label="Device" name="deviceId" error=${props.errors?.deviceId}>
      <select id=${`${props.idPrefix}-device`} name="deviceId" value=${props.deviceId} onChange=${(e: Event) => {
        const id = (e.target as HTMLSelectElement).value;
        props.onChange(id, defaultRuntime(props.devices.find((d) => d.id === id)));
      }}>
        <option value="">${props.devices.length === 0 ? 'no device yet' : 'choose a device'}</option>
        ${props.devices.map((d) => html`<option value=${d.id}>${d.name} (${d.online ? 'online' : 'offline'})</option>`)}
      </select>
    <//>
    <${Field} label="Runtime" name="runtime" error=${props.errors?.runtime}>
      <select id=${`${props.idPrefix}-runtime`} name="runtime" value=${props.runtime} onChange=${(e: Event) => props.onChange(props.deviceId, (e.target as HTMLSelectElement).value)}>
        ${runtimesOf(device).map((r) => html`<option value=${r}>${r}</option>`)}
      </select>
    <//>
  </div>`;
}
