// `nestjs-tiered-cache`: the Nest module and everything of the engine. `nestjs-tiered-cache/core` is the engine alone.
export * from './core';
export * from './nest';
