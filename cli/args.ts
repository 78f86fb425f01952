/**
 * Flag parsing for every command, on node's own `util.parseArgs`, turning its errors into
 * MorphErrors that name the flag and point at `--help`.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { MorphError } from '../src/errors.ts';

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface CommandIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Whether stdout is a terminal (progress bars) or a pipe (JSON events). */
  readonly isTty: boolean;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  run(argv: string[], io: CommandIo): Promise<number>;
}

export function parseFlags(command: string, argv: string[], options: Options): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (err) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet ${command}: ${(err as Error).message.replace(/\. To specify.*$/s, '')}; see "morphnet ${command} --help"`);
  }
}

export function numberFlag(command: string, name: string, value: string | boolean | undefined, check: (n: number) => boolean, expected: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (typeof value !== 'string' || value.trim() === '' || !Number.isFinite(n) || !check(n)) {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet ${command}: --${name} ${JSON.stringify(value)} is not ${expected}`);
  }
  return n;
}

export function requireString(command: string, name: string, value: string | boolean | undefined, example: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new MorphError('MORPH_ERR_BAD_ARGUMENT', `morphnet ${command}: --${name} is required, e.g. --${name} ${example}; see "morphnet ${command} --help"`);
  }
  return value;
}
