/** OpSpecs and their builders: what device agents import to time one op. */
export * from './op-spec.ts';
export { graphSpecs, tableGrid, axisValues, type GraphOpSpec, type GraphSpecs, type GridOptions } from './graph-specs.ts';
export { planFusion, type Fusion, type FusionPlan } from './fusion.ts';
export { specWeights, specInputs, seededRandom, randomArray, type SpecWeights } from './spec-weights.ts';
export { buildTfjsOp, type TfjsOp, type TfjsOpOptions } from './tfjs-op.ts';
export { buildLayersOp } from './tfjs-layers-op.ts';
export { writeSpecTflite, type SingleOpOptions } from '../export/tflite/single-op.ts';
export { loadTfliteRuntime, loadTfliteModel, type TfliteNodeModel, type TfliteRuntimeInfo, type TfliteLoadOptions, type TfliteTensorInfo } from './tflite-node.ts';
