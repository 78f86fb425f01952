/**
 * Load: N simulated agents stream results to a real server for S seconds while the UI's API is
 * polled; prints one JSON report (results stored per second, ack latency p50/p99, poll latency per
 * endpoint, the server's memory and CPU) and checks that nothing was lost or stored twice
 * (test/helpers/load-run.ts says exactly what is checked). Exit 0 when every check holds.
 *
 *   node --import tsx test/bench/load.ts [--agents 200] [--seconds 60] [--pollers 4]
 *        [--poll-pause-ms 250] [--grid 3] [--replay 0.05] [--delay-ms 0] [--out docs/bench/load.json]
 *
 * The figure: --agents 200 --seconds 60 (the defaults). Run it alone on the machine: the
 * server and the 200 agents share its cores.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runLoad } from '../helpers/load-run.ts';

const { values: flags } = parseArgs({
  options: {
    agents: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '60' },
    pollers: { type: 'string', default: '4' },
    'poll-pause-ms': { type: 'string', default: '250' },
    grid: { type: 'string', default: '3' },
    replay: { type: 'string', default: '0.05' },
    'delay-ms': { type: 'string', default: '0' },
    out: { type: 'string' },
  },
});

function intFlag(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new TypeError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

const seconds = intFlag('seconds', flags.seconds, 1, 3600);
const replay = Number(flags.replay);
if (!(replay >= 0 && replay <= 1)) throw new TypeError(`--replay must be a fraction from 0 to 1, got ${JSON.stringify(flags.replay)}`);

// A hard stop in case something hangs: the measured time plus generous set-up and drain.
const watchdog = setTimeout(() => {
  process.stderr.write('load: watchdog fired; giving up\n');
  process.exit(2);
}, (seconds + 600) * 1000);
watchdog.unref();

try {
  const report = await runLoad({
    agents: intFlag('agents', flags.agents, 1, 5000),
    seconds,
    pollers: intFlag('pollers', flags.pollers, 0, 64),
    pollPauseMs: intFlag('poll-pause-ms', flags['poll-pause-ms'], 0, 60_000),
    grid: intFlag('grid', flags.grid, 2, 64),
    replay,
    delayMs: intFlag('delay-ms', flags['delay-ms'], 0, 10_000),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const text = JSON.stringify(report, null, 2);
  console.log(text);
  if (flags.out) {
    const out = resolve(flags.out);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, `${text}\n`);
  }
  process.exitCode = report.verification.allPassed ? 0 : 1;
} catch (err) {
  process.stderr.write(`load: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
}
