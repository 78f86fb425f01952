/**
 * OpSpecs and their tfjs builders: what device agents import to time one op. The single-op
 * `.tflite` writer is `src/export/tflite/single-op.ts`; the Node TFLite runtime is the agent's
 * (`device-agent/node/tflite-runtime.ts`).
 */
export * from './op-spec.ts';
export { graphSpecs, tableGrid, axisValues, type GraphOpSpec, type GraphSpecs, type GridOptions } from './graph-specs.ts';
export { planFusion, type Fusion, type FusionPlan } from './fusion.ts';
export { specWeights, specInputs, seededRandom, randomArray, type SpecWeights } from './spec-weights.ts';
export { buildTfjsOp, type TfjsOp, type TfjsOpOptions } from './tfjs-op.ts';
export { buildLayersOp } from './tfjs-layers-op.ts';
