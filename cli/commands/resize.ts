/** `morphnet resize`: rebuild a model with a uniform width multiplier or an explicit structure. */
import { readFile } from 'node:fs/promises';
import { MorphError } from '../../src/errors.ts';
import { networkCost } from '../../src/cost/counts.ts';
import { parseModel } from '../../src/graph/parse.ts';
import { rebuild, toModelJson } from '../../src/graph/rebuild.ts';
import { structureSelection, uniformSelection, widthOf, type Selection } from '../../src/graph/widths.ts';
import { structureOf } from '../../src/export/structure.ts';
import { checkOutputDir, writeTfjsModel } from '../../src/export/tfjs-model.ts';
import { numberFlag, parseFlags, requireString, type Command } from '../args.ts';
import { human } from '../format.ts';
import { loadModelInput, type ModelInput } from '../model-source.ts';

const USAGE = `Usage: morphnet resize MODEL.json --multiplier W --out DIR [options]
       morphnet resize MODEL.json --structure S.json --out DIR [options]

Rebuilds the model with new channel widths and writes DIR/model.json + DIR/weights.bin (loadable
with tf.loadLayersModel) and DIR/structure.json. Channels that survive keep their weights (the
first ones of each group); new channels are initialised (Glorot uniform kernels, zero biases,
identity batch norm). The network input and the final output layer never change width.

Options:
  --multiplier W   scale every resizable channel group by W (e.g. 0.5)
  --divisor N      with --multiplier, round widths to a multiple of N (default 1)
  --structure F    JSON {"layer": channels, ...}; layers sharing a group must agree
  --out DIR        output directory (must not exist or be empty)
  --overwrite      replace a non-empty DIR
  --seed S         seed for initialising new channels (default 1)
  --json           print a JSON summary
  --seed-model N   resize a built-in seed (mobilenet|resnet|vgg|mobilenetv2|wideresnet)
  --input-shape H,W,C  the input size for a model saved with free sizes ([null, null, null, 3])
  -h, --help       this text`;

/** Writes the rebuilt model and returns the summary both resize and prune print. */
export async function writeResized(
  m: ModelInput,
  selection: Selection,
  out: string,
  opts: { overwrite: boolean; seed: number },
): Promise<{ out: string; before: { macs: number; params: number }; after: { macs: number; params: number }; groups: { id: number; layers: string[]; before: number; after: number }[] }> {
  const rebuilt = rebuild(m.graph, m.analysis, selection, m.weights, { seed: opts.seed });
  // Re-parse what we are about to write: a rebuilt model must be one we can read back.
  const reparsed = parseModel(toModelJson(rebuilt), { source: 'rebuilt model' }).graph;
  const structure = structureOf(m.graph, m.analysis, selection);
  const dir = await writeTfjsModel(out, rebuilt, { overwrite: opts.overwrite, extraFiles: { 'structure.json': structure } });
  const before = networkCost(m.graph);
  const after = networkCost(reparsed);
  return {
    out: dir,
    before: { macs: before.macs, params: before.params },
    after: { macs: after.macs, params: after.params },
    groups: m.analysis.groups.map((g) => ({ id: g.id, layers: [...g.layers], before: g.channels, after: widthOf(selection[g.id]) })),
  };
}

export const resizeCommand: Command = {
  name: 'resize',
  summary: 'rebuild a model with a width multiplier or an explicit structure',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags('resize', argv, {
      multiplier: { type: 'string' },
      divisor: { type: 'string' },
      structure: { type: 'string' },
      out: { type: 'string' },
      overwrite: { type: 'boolean' },
      seed: { type: 'string' },
      'seed-model': { type: 'string' },
      json: { type: 'boolean' },
      'input-shape': { type: 'string' },
    });
    const multiplier = numberFlag('resize', 'multiplier', values.multiplier, (n) => n > 0, 'a positive number such as 0.5');
    const divisor = numberFlag('resize', 'divisor', values.divisor, (n) => Number.isInteger(n) && n > 0, 'a positive integer') ?? 1;
    const seed = numberFlag('resize', 'seed', values.seed, Number.isInteger, 'an integer') ?? 1;
    if ((multiplier === undefined) === (values.structure === undefined)) {
      throw new MorphError('MORPH_ERR_BAD_ARGUMENT', 'morphnet resize: give exactly one of --multiplier W or --structure S.json; see "morphnet resize --help"');
    }
    const out = requireString('resize', 'out', values.out, 'resized/');
    await checkOutputDir(out, values.overwrite === true);
    const m = await loadModelInput('resize', positionals[0], values['seed-model'], { inputShape: values['input-shape'] as string | undefined });
    let selection: Selection;
    if (multiplier !== undefined) {
      selection = uniformSelection(m.analysis, multiplier, divisor);
    } else {
      const path = values.structure as string;
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch {
        throw new MorphError('MORPH_ERR_NOT_FOUND', `cannot read structure file ${path}; give a JSON file like {"conv1": 12}`, { path });
      }
      let structure: unknown;
      try {
        structure = JSON.parse(text);
      } catch (err) {
        throw new MorphError('MORPH_ERR_NOT_JSON', `structure file ${path} is not JSON (${(err as Error).message})`, { path });
      }
      selection = structureSelection(m.graph, m.analysis, structure, path);
    }
    const summary = await writeResized(m, selection, out, { overwrite: values.overwrite === true, seed });
    if (values.json) {
      io.out(JSON.stringify(summary, null, 2));
    } else {
      const changed = summary.groups.filter((g) => g.before !== g.after);
      io.out(
        [
          `wrote ${summary.out}/model.json, weights.bin, structure.json`,
          `MACs ${human(summary.before.macs)} → ${human(summary.after.macs)}, params ${human(summary.before.params)} → ${human(summary.after.params)}`,
          `${changed.length} of ${summary.groups.length} channel groups changed width:`,
          ...changed.map((g) => `  group ${g.id} (${g.layers[0]}${g.layers.length > 1 ? ', …' : ''}): ${g.before} → ${g.after}`),
        ].join('\n'),
      );
    }
    return 0;
  },
};
