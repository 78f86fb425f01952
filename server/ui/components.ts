/** Shared pieces of the pages: fields with their error beside them, notices, progress, cards. */
import type { ComponentChildren, VNode } from 'preact';
import { html } from 'htm/preact';
import { ApiError } from './api.ts';

/**
 * A labelled form control with its hint and, when the API refused the field, the error right
 * under it (`data-error-for` names the API field).
 */
export function Field(props: { label: string; name: string; error?: string; hint?: ComponentChildren; children: ComponentChildren; wide?: boolean }): VNode {
  return html`<div class=${`field${props.error ? ' invalid' : ''}${props.wide ? ' wide' : ''}`} data-field=${props.name}>
    <label>
      <span class="label">${props.label}</span>
      ${props.children}
    </label>
    ${props.hint ? html`<div class="hint">${props.hint}</div>` : null}
    ${props.error ? html`<div class="field-error" role="alert" data-error-for=${props.name}>${props.error}</div>` : null}
  </div>`;
}

/** An API or network error as a notice (code in small type), or nothing. */
export function ErrorNote(props: { error: unknown; what?: string }): VNode | null {
  if (props.error === null || props.error === undefined) return null;
  const e = props.error;
  const code = e instanceof ApiError ? e.code : null;
  const message = e instanceof Error ? e.message : String(e);
  return html`<div class="notice error" role="alert" data-code=${code ?? ''}>
    ${props.what ? html`<strong>${props.what}: </strong>` : null}${message}${code ? html` <code class="code">${code}</code>` : null}
  </div>`;
}

export function Notice(props: { kind?: 'info' | 'warn' | 'ok'; children: ComponentChildren }): VNode {
  return html`<div class=${`notice ${props.kind ?? 'info'}`}>${props.children}</div>`;
}

/** A progress bar with its text; `value` null shows an indeterminate bar. */
export function Progress(props: { value: number | null; label: ComponentChildren; name?: string }): VNode {
  return html`<div class="progress" data-progress=${props.name ?? ''} data-value=${props.value === null ? '' : props.value.toFixed(3)}>
    ${props.value === null ? html`<progress></progress>` : html`<progress max="1" value=${props.value}></progress>`}
    <div class="progress-label">${props.label}</div>
  </div>`;
}

export function Card(props: { title?: ComponentChildren; id?: string; actions?: ComponentChildren; children: ComponentChildren }): VNode {
  return html`<section class="card" id=${props.id}>
    ${props.title || props.actions ? html`<header class="card-head">${props.title ? html`<h2>${props.title}</h2>` : null}${props.actions ? html`<div class="actions">${props.actions}</div>` : null}</header>` : null}
    ${props.children}
  </section>`;
}

/** An online/offline (or state) badge. */
export function Badge(props: { kind: string; children: ComponentChildren }): VNode {
  return html`<span class=${`badge badge-${props.kind}`}>${props.children}</span>`;
}

/** A table that scrolls sideways on a narrow screen instead of widening the page. */
export function Scroll(props: { children: ComponentChildren }): VNode {
  return html`<div class="scroll">${props.children}</div>`;
}
