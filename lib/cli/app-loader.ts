import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { UsageError } from './cli-args';

/** The parts of @nestjs/core's NestFactory the CLI calls. */
export interface NestFactoryLike {
  createApplicationContext(module: unknown, options?: object): Promise<AppLike>;
  create(module: unknown, options?: object): Promise<AppLike & { listen(port: number, host: string): Promise<unknown> }>;
}

export interface AppLike {
  get(token: unknown, options?: { strict: boolean }): unknown;
  close(): Promise<void>;
}

const MODULE_KEYS = ['imports', 'providers', 'controllers', 'exports'];

/** Whether a value is a Nest module class (or a dynamic module). */
function isModule(v: unknown): boolean {
  if (typeof v === 'function') return MODULE_KEYS.some((k) => Reflect.getMetadata?.(k, v) !== undefined) || Reflect.getMetadata?.('__module:global__', v) !== undefined;
  return v !== null && typeof v === 'object' && typeof (v as { module?: unknown }).module === 'function';
}

/**
 * Loads the user's compiled module file and picks the root module: `--export`, else `AppModule`, else the default
 * export, else the only Nest module among the exports. NestFactory comes from where the app resolves @nestjs/core
 * (the app's own copy: a second copy would not know the app's modules).
 */
export function loadApp(file: string, exportName: string | undefined): { module: unknown; nest: NestFactoryLike } {
  const path = resolve(process.cwd(), file);
  if (!existsSync(path)) throw new UsageError(`--app ${file}: no such file (${path})`);
  let nestCore: { NestFactory: NestFactoryLike };
  try {
    nestCore = createRequire(path)('@nestjs/core') as { NestFactory: NestFactoryLike };
  } catch {
    try {
      nestCore = require('@nestjs/core') as { NestFactory: NestFactoryLike };
    } catch {
      throw new UsageError(`--app ${file}: @nestjs/core cannot be resolved from there`);
    }
  }
  // Decorator metadata must be readable before the app's classes are evaluated.
  try {
    createRequire(path)('reflect-metadata');
  } catch {
    require('reflect-metadata');
  }
  const exported = require(path) as Record<string, unknown>;
  let chosen: unknown;
  if (exportName !== undefined) {
    chosen = exported[exportName];
    if (chosen === undefined) throw new UsageError(`--export ${exportName}: ${file} exports no ${exportName} (it exports ${Object.keys(exported).join(', ') || 'nothing'})`);
  } else if (exported.AppModule !== undefined) chosen = exported.AppModule;
  else if (exported.default !== undefined) chosen = exported.default;
  else {
    const modules = Object.entries(exported).filter(([, v]) => isModule(v));
    if (modules.length !== 1) {
      throw new UsageError(`${file}: ${modules.length === 0 ? 'exports no Nest module' : `exports several modules (${modules.map(([k]) => k).join(', ')})`}; name the root one with --export`);
    }
    chosen = modules[0][1];
  }
  if (typeof chosen !== 'function' && !isModule(chosen)) throw new UsageError(`${file}: ${exportName ?? 'the chosen export'} is not a Nest module`);
  return { module: chosen, nest: nestCore.NestFactory };
}
