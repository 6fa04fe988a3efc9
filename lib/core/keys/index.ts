export { canonicalize, stableDigest } from './stable-digest';
export { argumentSegment, templateSegment } from './key-segment';
export { KeyTemplate } from './key-template';
export { parameterNames } from './parameter-names';
export { buildArgumentsKey, defaultKeyPrefix } from './method-key';
