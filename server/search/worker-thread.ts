/**
 * Starting a search's worker thread (server/search/worker.ts) and following it to its outcome:
 * its stdout and stderr lines, its events (handled in order, one after the other), its requests to
 * measure a candidate on the device (answered whenever they are measured), and its last word
 * (`done` or `failed`), after which it is terminated. A worker that crashes or exits without a
 * last word has failed.
 */
import { Worker } from 'node:worker_threads';
import type { SearchError, SearchResultSummary } from '../contract/searches.ts';
import type { ProgressEvent } from '../contract/search-events.ts';
import type { MeasureReply, SearchWorkerData, WorkerMessage } from './worker.ts';

export type WorkerOutcome = { readonly type: 'done'; readonly result: SearchResultSummary } | { readonly type: 'failed'; readonly error: SearchError };

export interface WorkerHandlers {
  /** An event of the search; the next one waits for it. Must not throw. */
  readonly onEvent: (event: ProgressEvent) => Promise<void>;
  /** A candidate to measure on the device (closed-loop expand); the reply goes back to the worker. Must not throw. */
  readonly onMeasure: (request: Extract<WorkerMessage, { type: 'measure' }>) => Promise<MeasureReply>;
  /** A line the worker printed. */
  readonly onOutput: (line: string) => void;
}

/**
 * Code run as the worker's entry: registers tsx (a worker does not inherit the loader hooks that
 * `cli/bin.js` registered in the main thread), then loads the TypeScript worker module.
 */
function bootstrapCode(): string {
  const tsx = import.meta.resolve('tsx/esm/api');
  const worker = new URL('./worker.ts', import.meta.url).href;
  return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(worker)}); }).catch((err) => {
  require('node:worker_threads').parentPort.postMessage({ type: 'failed', error: { code: 'MORPH_ERR_INTERNAL', message: 'the search worker could not start: ' + (err && err.message || String(err)) } });
});`;
}

/**
 * Starts the worker on `data`. `outcome` settles once the worker has exited and every event it
 * sent was handled; `worker` is there to terminate it (cancel, shutdown).
 */
export function startWorker(data: SearchWorkerData, handlers: WorkerHandlers): { worker: Worker; outcome: Promise<WorkerOutcome> } {
  const worker = new Worker(bootstrapCode(), { eval: true, workerData: data, stdout: true, stderr: true });
  const outcome = new Promise<WorkerOutcome>((resolveOutcome) => {
    let last: WorkerOutcome | null = null;
    const forward = (chunk: Buffer): void => {
      for (const line of chunk.toString().split('\n')) if (line.trim()) handlers.onOutput(line);
    };
    worker.stdout.on('data', forward);
    worker.stderr.on('data', forward);
    let chain = Promise.resolve();
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'event') {
        chain = chain.then(() => handlers.onEvent(m.event));
      } else if (m.type === 'measure') {
        void handlers.onMeasure(m).then((reply) => worker.postMessage(reply));
      } else if (!last) {
        last = m;
        void worker.terminate();
      }
    });
    worker.on('error', (err) => {
      last ??= { type: 'failed', error: { code: 'MORPH_ERR_INTERNAL', message: `the search worker crashed: ${err.message}` } };
    });
    worker.on('exit', (code) => {
      void chain.then(() => resolveOutcome(last ?? { type: 'failed', error: { code: 'MORPH_ERR_INTERNAL', message: `the search worker exited (code ${code}) before it finished` } }));
    });
  });
  return { worker, outcome };
}
