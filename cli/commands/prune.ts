/** `morphnet prune`: remove dead channels (max |γ| of their group ≤ T), keeping the rest exactly. */
import { MorphError } from '../../src/errors.ts';
import { checkOutputDir } from '../../src/export/tfjs-model.ts';
import { aliveSelection } from '../../src/graph/widths.ts';
import { numberFlag, parseFlags, requireString, type Command } from '../args.ts';
import { human, table } from '../format.ts';
import { loadModelInput } from '../model-source.ts';
import { writeResized } from './resize.ts';

const USAGE = `Usage: morphnet prune MODEL.json --threshold T --out DIR [--json] [--overwrite]

Removes every channel whose group's max |gamma| (over the batch norms covering it) is ≤ T, and
writes the smaller model to DIR (model.json, weights.bin, structure.json). Surviving weights are
kept exactly (kernels, biases and batch-norm parameters sliced along the right axes, concat
slices included), so channels whose gamma and beta were 0 leave the outputs unchanged. Groups
without batch norm, the network input and the final output keep all channels. Prints the alive
channel count of every group.

Options:
  --threshold T   gamma threshold, e.g. 0.01 (MorphNet's default)
  --out DIR       output directory (must not exist or be empty)
  --overwrite     replace a non-empty DIR
  --json          print a JSON summary
  --input-shape H,W,C  the input size for a model saved with free sizes ([null, null, null, 3])
  -h, --help      this text`;

export const pruneCommand: Command = {
  name: 'prune',
  summary: 'remove channels whose batch-norm gamma is below a threshold',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags('prune', argv, {
      threshold: { type: 'string' },
      out: { type: 'string' },
      overwrite: { type: 'boolean' },
      json: { type: 'boolean' },
      'input-shape': { type: 'string' },
    });
    const threshold = numberFlag('prune', 'threshold', values.threshold, (n) => n >= 0, 'a non-negative number such as 0.01');
    if (threshold === undefined) throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'morphnet prune: --threshold is required, e.g. --threshold 0.01');
    const out = requireString('prune', 'out', values.out, 'pruned/');
    await checkOutputDir(out, values.overwrite === true);
    const m = await loadModelInput('prune', positionals[0], undefined, { inputShape: values['input-shape'] as string | undefined });
    if (!m.weights) {
      throw new MorphError('MORPH_ERR_WEIGHTS_MISSING', `${m.path} has no weightsManifest; prune reads the trained batch-norm gammas, so give a model.json saved with its weights`, { path: m.path });
    }
    const alive = aliveSelection(m.graph, m.analysis, m.weights, threshold);
    const summary = await writeResized(m, alive.selection, out, { overwrite: values.overwrite === true, seed: 1 });
    const result = { ...summary, threshold, alive: alive.alive, warnings: alive.warnings };
    if (values.json) {
      io.out(JSON.stringify(result, null, 2));
    } else {
      io.out(
        [
          table(
            ['group', 'layers', 'channels', 'alive'],
            alive.alive.map((g) => [String(g.group), g.layers.length > 3 ? `${g.layers.slice(0, 3).join(', ')}, …` : g.layers.join(', '), String(g.channels), g.regularized ? String(g.alive) : `${g.alive} (not regularized)`]),
          ),
          '',
          `wrote ${summary.out}: MACs ${human(summary.before.macs)} → ${human(summary.after.macs)}, params ${human(summary.before.params)} → ${human(summary.after.params)}`,
          ...alive.warnings.map((w) => `warning: ${w}`),
        ].join('\n'),
      );
    }
    return 0;
  },
};
