/**
 * The op every table point is timed against (interleaved, sample by sample; protocol v3). A point
 * is then stored as its ratio to this op, which a change of the machine's speed (another process,
 * a slow phase of the VM, thermal throttling) moves much less than the op's own time, and read as
 * ratio × this op's settled latency on the device (server/tables.ts).
 *
 * Why this op: a 3×3 conv with a fused ReLU at 28×28×16 → 16 is the kind of op the tables mostly
 * hold (1.8 M MACs: a fraction of a millisecond on a phone or laptop CPU, so it adds little to a
 * profile job), it runs on every runtime the agents serve, and it is never changed: a device's
 * settled reference latency is the median over every point it was timed beside.
 */
import { makeSpec, type OpSpec } from './op-spec.ts';

export const REFERENCE_OP: OpSpec = makeSpec({ kind: 'conv2d', inH: 28, inW: 28, cIn: 16, cOut: 16, kernel: 3, activation: 'relu' });
