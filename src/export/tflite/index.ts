/** The float32 `.tflite` writer: schema table builders, single-op files, whole networks. */
export { TfliteModelBuilder, hwioToOhwi, transpose2d } from './model-builder.ts';
export { writeNetworkTflite, type NetworkTfliteOptions, type NetworkTfliteResult } from './network.ts';
export { BuiltinOperator, TFLITE_FILE_IDENTIFIER, TFLITE_SCHEMA_VERSION, TensorType } from './schema.ts';
export { writeSpecTflite, type SingleOpOptions } from './single-op.ts';
