/**
 * One torch worker process (worker.py) and the client side of its protocol (protocol.ts): spawn,
 * the hello, commands answered by id, step events, and every way it can end. A worker that exits,
 * is killed or writes something that is not protocol fails every waiting command with
 * `MORPH_ERR_ENGINE` carrying its last stderr lines, so a caller never hangs on a dead worker; a
 * worker that says nothing at start within `helloTimeoutMs` is killed and reported the same way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MorphError } from '../../errors.ts';
import { TORCH_PROTOCOL_VERSION, type CommandName, type Commands, type Hello, type StepMessage } from './protocol.ts';

export const WORKER_SCRIPT = fileURLToPath(new URL('./worker.py', import.meta.url));

/** Lines of the worker's stderr kept for error messages. */
const STDERR_LINES = 20;

export interface WorkerOptions {
  /** The interpreter to run worker.py with. */
  readonly python: string;
  /** Torch threads; 0 = every core. */
  readonly threads?: number;
  /** `auto` (CUDA when available), `cpu`, `cuda`, `cuda:1`… Default auto. */
  readonly device?: string;
  /** How long the worker may take to import torch and say hello. Default 120 000 ms. */
  readonly helloTimeoutMs?: number;
}

type HelloOk = Extract<Hello, { ok: true }>;

interface Waiting {
  resolve(v: unknown): void;
  reject(e: Error): void;
  onStep?: (m: StepMessage) => void;
}

export class TorchWorker {
  readonly hello: HelloOk;
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, Waiting>();
  readonly #stderr: string[];
  #nextId = 1;
  #dead: MorphError | null = null;

  private constructor(child: ChildProcess, hello: HelloOk, stderr: string[]) {
    this.#child = child;
    this.hello = hello;
    this.#stderr = stderr;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Null while the worker runs; the error it ended with once it is gone. */
  get deadReason(): MorphError | null {
    return this.#dead;
  }

  /**
   * Starts a worker and waits for its hello. @throws MorphError `MORPH_ERR_ENGINE` when the
   * interpreter cannot be run, cannot import torch, speaks another protocol version or says nothing.
   */
  static async start(o: WorkerOptions): Promise<TorchWorker> {
    const args = [WORKER_SCRIPT, `--threads=${o.threads ?? 0}`, `--device=${o.device ?? 'auto'}`];
    const child = spawn(o.python, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    const stderr: string[] = [];
    createInterface({ input: child.stderr! }).on('line', (line) => {
      stderr.push(line);
      if (stderr.length > STDERR_LINES) stderr.shift();
    });
    const lines = createInterface({ input: child.stdout! });
    let worker: TorchWorker | null = null;
    const hello = await new Promise<HelloOk>((resolve, reject) => {
      const fail = (why: string): void => {
        child.kill('SIGKILL');
        reject(new MorphError('MORPH_ERR_ENGINE', `the torch worker (${o.python}) ${why}${tail(stderr)}`, { python: o.python }));
      };
      const timer = setTimeout(() => fail(`said nothing within ${(o.helloTimeoutMs ?? 120_000) / 1000} s of starting`), o.helloTimeoutMs ?? 120_000);
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(new MorphError('MORPH_ERR_ENGINE', `cannot run ${o.python}: ${err.message}`, { python: o.python }));
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (!worker) {
          // Give the stderr reader a moment: the exit can come before its last lines.
          setImmediate(() => reject(new MorphError('MORPH_ERR_ENGINE', `the torch worker (${o.python}) exited at start (${signal ?? `code ${code}`})${tail(stderr)}`, { python: o.python })));
        }
      });
      lines.once('line', (line) => {
        clearTimeout(timer);
        let h: Hello;
        try {
          h = JSON.parse(line) as Hello;
        } catch {
          fail(`did not start with a hello: ${line.slice(0, 200)}`);
          return;
        }
        if (h.type !== 'hello') return fail(`did not start with a hello: ${line.slice(0, 200)}`);
        if (!h.ok) return fail(`cannot import torch (${h.error}); install it (Debian: apt install python3-torch) or point MORPHNET_PYTHON at a Python that has it`);
        if (h.protocol !== TORCH_PROTOCOL_VERSION) return fail(`speaks protocol ${h.protocol}, this MorphNet Edge speaks ${TORCH_PROTOCOL_VERSION}`);
        resolve(h);
      });
    });
    worker = new TorchWorker(child, hello, stderr);
    lines.on('line', (line) => worker!.#onLine(line));
    child.on('exit', (code, signal) => worker!.#onExit(code, signal));
    // A parent that dies closes the worker's stdin; the worker exits on EOF (worker.py read_stdin).
    child.stdin!.on('error', () => {});
    return worker;
  }

  /** Sends a command and waits for its reply; `onStep` receives the step events of an epoch. */
  request<C extends CommandName>(cmd: C, req: Commands[C]['req'], onStep?: (m: StepMessage) => void): Promise<Commands[C]['res']> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, onStep });
      this.#child.stdin!.write(`${JSON.stringify({ id, cmd, ...req })}\n`);
    });
  }

  /** Ends the running epoch after its current step (its reply then says `stopped`). */
  stopEpoch(): void {
    if (!this.#dead) this.#child.stdin!.write(`${JSON.stringify({ cmd: 'stop' })}\n`);
  }

  /** Ends the worker: a polite exit, then SIGKILL after `graceMs`. Resolves once it is gone. */
  async close(graceMs = 2000): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#dead ??= new MorphError('MORPH_ERR_ENGINE', 'the torch worker was closed');
    this.#child.stdin!.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }

  #onLine(line: string): void {
    let m: { id?: number; ok?: boolean; event?: string; error?: { code: string; message: string; layer?: string } };
    try {
      m = JSON.parse(line) as typeof m;
    } catch {
      this.#fail(`wrote a line that is not protocol: ${line.slice(0, 200)}`);
      this.#child.kill('SIGKILL');
      return;
    }
    const w = m.id === undefined ? undefined : this.#waiting.get(m.id);
    if (!w) return;
    if (m.event === 'step') {
      w.onStep?.(m as unknown as StepMessage);
      return;
    }
    this.#waiting.delete(m.id!);
    if (m.ok) {
      w.resolve(m);
      return;
    }
    const e = m.error ?? { code: 'internal', message: 'no error given' };
    w.reject(new MorphError('MORPH_ERR_ENGINE', `the torch worker failed: ${e.message}${e.code === 'internal' ? tail(this.#stderr) : ''}`, { workerCode: e.code, ...(e.layer ? { layer: e.layer } : {}) }));
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    // The stderr reader may still hold the last lines: fail the waiting commands on the next turn.
    setImmediate(() => this.#fail(`exited (${signal ? `killed by ${signal}` : `code ${code}`})`));
  }

  #fail(why: string): void {
    const err = this.#dead ?? new MorphError('MORPH_ERR_ENGINE', `the torch worker (pid ${this.#child.pid}) ${why}${tail(this.#stderr)}`, { pid: this.#child.pid });
    this.#dead = err;
    for (const w of this.#waiting.values()) w.reject(err);
    this.#waiting.clear();
  }
}

function tail(lines: readonly string[]): string {
  return lines.length > 0 ? `; its last stderr lines:\n${lines.join('\n')}` : '';
}
