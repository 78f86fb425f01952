/** `morphnet inspect`: layers, shapes, channel groups and costs of a model. */
import { inspectReport, type InspectReport } from '../../src/cost/inspect-report.ts';
import { parseFlags, type Command } from '../args.ts';
import { human, shapeText, table } from '../format.ts';
import { loadModelInput } from '../model-source.ts';

const USAGE = `Usage: morphnet inspect MODEL.json [--input-shape H,W,C] [--json]
       morphnet inspect --seed mobilenet|resnet|vgg|mobilenetv2|wideresnet [--json]

Prints every layer (class, output shape, MACs, params, channel group), the channel groups
(layers whose channels must keep equal widths, and whether MorphNet may resize them) and the
totals at batch 1: MACs, FLOPs (= 2·MACs), params (every weight, as tfjs countParams counts).
Nested models (a Sequential or Functional used as a layer) are inlined into one graph. Layers
MorphNet does not model but TensorFlow.js knows (LSTM, Embedding, ...) are shown "not costed":
their params count, their MACs are left out of the total, and the widths around them stay fixed.
Without its weight files beside it, a model.json is read as topology only.

Options:
  --json        one JSON object: {layers, macs, flops, params, activationBytes, groups, perLayer, ...}
  --seed NAME   inspect a built-in seed model instead of a file
  --input-shape H,W,C  the input size for a model saved with free sizes ([null, null, null, 3])
  -h, --help    this text`;

function render(r: InspectReport): string {
  const layerRows = r.perLayer.map((l) => [l.name, l.className, shapeText(l.outputShape), l.costed ? human(l.macs) : 'not costed', human(l.params), Array.isArray(l.group) ? l.group.join('+') : String(l.group)]);
  const groupRows = r.groups.map((g) => [
    String(g.id),
    String(g.channels),
    g.regularized ? 'regularized' : g.resizable ? 'resizable' : `fixed: ${g.fixedReasons.join('; ')}`,
    g.layers.length > 4 ? `${g.layers.slice(0, 4).join(', ')}, … (${g.layers.length})` : g.layers.join(', '),
  ]);
  return [
    `${r.model}: ${r.modelClass}, ${r.layers} layers, input ${r.inputs.map((i) => shapeText(i.shape)).join(' ')} → output ${r.outputs.map((o) => shapeText(o.shape)).join(' ')}${r.hasWeights ? '' : ' (topology only, no weights)'}`,
    '',
    table(['layer', 'class', 'output', 'MACs', 'params', 'group'], layerRows),
    '',
    table(['group', 'channels', 'state', 'layers'], groupRows),
    '',
    `total: ${human(r.macs)} MACs (${r.macs}), ${human(r.flops)} FLOPs, ${human(r.params)} params (${r.params}), ${human(r.activationBytes)}B activations at batch 1`,
    ...r.warnings.map((w) => `warning: ${w}`),
  ].join('\n');
}

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'layers, channel groups, MACs/FLOPs/params of a model',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags('inspect', argv, { json: { type: 'boolean' }, seed: { type: 'string' }, 'input-shape': { type: 'string' } });
    const m = await loadModelInput('inspect', positionals[0], values.seed, { inputShape: values['input-shape'] as string | undefined });
    const report = inspectReport(m);
    io.out(values.json ? JSON.stringify(report, null, 2) : render(report));
    return 0;
  },
};
