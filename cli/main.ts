/**
 * The `morphnet` command line: dispatches to one module per command and turns every MorphError
 * into one clear message (or `{"error": {code, message}}` with --json) and exit code 2. Anything
 * else is a bug: exit 1 with the stack, so it can be reported.
 */
import * as tf from '@tensorflow/tfjs';
import { isMorphError } from '../src/errors.ts';
import type { Command, CommandIo } from './args.ts';
import { agentCommand } from './commands/agent.ts';
import { backupCommand, restoreCommand } from './commands/backup.ts';
import { doctorCommand } from './commands/doctor.ts';
import { exportCommand } from './commands/export.ts';
import { inspectCommand } from './commands/inspect.ts';
import { profileCommand } from './commands/profile.ts';
import { pruneCommand } from './commands/prune.ts';
import { resizeCommand } from './commands/resize.ts';
import { searchCommand } from './commands/search.ts';
import { serveCommand } from './commands/serve.ts';

// tfjs's "Hi, looks like you are running TensorFlow.js in Node.js" banner and debug warnings are
// not for our users: the CLI says which engine and backend it uses itself.
tf.enableProdMode();

export const COMMANDS: readonly Command[] = [inspectCommand, resizeCommand, pruneCommand, searchCommand, exportCommand, serveCommand, agentCommand, profileCommand, backupCommand, restoreCommand, doctorCommand];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'Usage: morphnet <command> [options]',
    '',
    'MorphNet Edge: learn the channel widths of a CNN for a cost budget.',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run "morphnet <command> --help" for the options of a command.',
  ].join('\n');
}

const defaultIo: CommandIo = {
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
  isTty: Boolean(process.stdout.isTTY),
};

export async function main(argv: string[], io: CommandIo = defaultIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.err(`morphnet: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  // Every command answers --help the same way, before its flags are parsed.
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(command.usage);
    return 0;
  }
  const json = rest.includes('--json');
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (isMorphError(err)) {
      if (json) io.out(JSON.stringify({ error: err.toJSON() }));
      const prefix = `morphnet ${name}: `;
      io.err(`${err.message.startsWith(prefix) ? '' : prefix}${err.message} [${err.code}]`);
      return err.exitCode;
    }
    io.err(`morphnet ${name}: internal error, please report it with the command line:\n${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}
