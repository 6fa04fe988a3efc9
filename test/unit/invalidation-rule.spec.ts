import { TieredCacheOptionsError, tieredCacheOptionsFromEnv } from '../../lib';
import { resolveOptions } from '../../lib/core/options';
import { compileEventPattern, eventName } from '../../lib/nest/events/event-pattern';
import { compileRule, compileRules, fillTemplate, parseTemplate, resolveRule } from '../../lib/nest/events/invalidation-rule';
import { BusOutbox } from '../../lib/core/bus/bus-outbox';
import { decodeBusMessage, encodeBusMessage } from '../../lib/core/bus/bus-message';
import type { CacheChange } from '../../lib/core/tiered-cache';

describe('invalidation rule templates', () => {
  it('fills placeholders from the payload, nested paths and alternatives included', () => {
    const t = parseTemplate('t', 'p:{tenant.id}:{propertyId|property_id}');
    expect(fillTemplate(t, { tenant: { id: 't1' }, property_id: 42 }, false)).toEqual({ value: 'p:t1:42' });
    expect(fillTemplate(t, { tenant: { id: 't1' }, propertyId: 'a', property_id: 'b' }, false)).toEqual({ value: 'p:t1:a' });
  });

  it('reports a missing, null, empty or non-scalar field instead of widening', () => {
    const t = parseTemplate('t', 'property:{propertyId}:*');
    for (const payload of [{}, { propertyId: undefined }, { propertyId: null }, { propertyId: '' }, { propertyId: { x: 1 } }, { propertyId: NaN }, undefined, 'str']) {
      expect(fillTemplate(t, payload, true)).toEqual({ missing: '{propertyId}' });
    }
  });

  it('does not read inherited properties', () => {
    const t = parseTemplate('t', 'k:{constructor}');
    expect(fillTemplate(t, {}, false)).toEqual({ missing: '{constructor}' });
  });

  it('fills values as the segments a @Cacheable template makes of them, so no glob character gets into a pattern', () => {
    const t = parseTemplate('t', 'list:{tenantId}:*');
    expect(fillTemplate(t, { tenantId: 'a*b?[c]\\' }, true)).toEqual({ value: 'list:a%2Ab%3F%5Bc%5D%5C:*' });
    expect(fillTemplate(t, { tenantId: 'a*b' }, false)).toEqual({ value: 'list:a%2Ab:*' });
    expect(fillTemplate(t, { tenantId: 'FR/75' }, false)).toEqual({ value: 'list:FR%2F75:*' });
    expect(fillTemplate(t, { tenantId: 42 }, false)).toEqual({ value: 'list:42:*' });
  });

  it('keeps doubled braces literal (Cluster hash tags)', () => {
    const t = parseTemplate('t', '{{user:{id}}}:profile');
    expect(fillTemplate(t, { id: 7 }, false)).toEqual({ value: '{user:7}:profile' });
  });

  it('rejects malformed templates at boot, naming the option', () => {
    expect(() => parseTemplate('invalidationRules[0].keys[0]', 'a:{ bad id }')).toThrow(TieredCacheOptionsError);
    expect(() => parseTemplate('invalidationRules[0].keys[0]', 'a:{id')).toThrow(/invalidationRules\[0\]\.keys\[0\]/);
    expect(() => parseTemplate('x', 'a}b')).toThrow(/unmatched/);
    expect(() => parseTemplate('x', '')).toThrow(TieredCacheOptionsError);
  });

  it('validates rules and names the failing field', () => {
    expect(() => compileRules('invalidationRules', [{ event: 'a', keys: ['k'] }, { event: '', keys: ['k'] }])).toThrow(/invalidationRules\[1\]\.event/);
    expect(() => compileRules('invalidationRules', [{ event: 'a' }])).toThrow(/at least one of keys, patterns, tags/);
    expect(() => compileRules('invalidationRules', [{ event: 'a', keys: 'k' }])).toThrow(/invalidationRules\[0\]\.keys/);
    expect(() => compileRules('invalidationRules', {})).toThrow(/expected an array/);
  });

  it('resolves a whole rule, or skips it entirely when any field is missing', () => {
    const rule = compileRule('r', {
      event: 'property.updated',
      keys: ['property:detail:{propertyId}'],
      patterns: ['properties:list:{tenantId}:*'],
      tags: ['property:{propertyId}'],
    });
    expect(resolveRule(rule, { propertyId: 'p1', tenantId: 't1' })).toEqual({
      keys: ['property:detail:p1'],
      patterns: ['properties:list:t1:*'],
      tags: ['property:p1'],
    });
    expect(resolveRule(rule, { propertyId: 'p1' })).toEqual({ missing: '{tenantId}', template: 'properties:list:{tenantId}:*' });
  });

  it('validates options through the engine options resolver', () => {
    expect(() => compileRules('invalidationRules', [{ event: 'x', keys: ['{'] }])).toThrow(/invalidationRules\[0\]\.keys\[0\]/);
    expect(() => resolveOptions({ invalidation: { batchSize: 0 } })).toThrow(/invalidation\.batchSize/);
    expect(() => resolveOptions({ bus: 'yes' as unknown as boolean })).toThrow(/"bus"/);
    expect(resolveOptions({}).bus).toBeUndefined();
    expect(resolveOptions({ redis: 'redis://127.0.0.1:1' }).bus).toEqual({ maxMessageBytes: 65536, retryQueueSize: 10000, heartbeatInterval: 5000, overwriteWindow: 1, tracking: true });
    expect(resolveOptions({ redis: 'redis://127.0.0.1:1', bus: { overwriteWindow: 0 } }).bus?.overwriteWindow).toBe(0);
    expect(() => resolveOptions({ redis: 'redis://127.0.0.1:1', bus: { overwriteWindow: -1 } })).toThrow(/"bus.overwriteWindow"/);
    expect(() => resolveOptions({ redis: 'redis://127.0.0.1:1', bus: { tracking: 'yes' as unknown as boolean } })).toThrow(/"bus.tracking"/);
    expect(resolveOptions({ redis: 'redis://127.0.0.1:1', bus: false }).bus).toBeUndefined();
    expect(resolveOptions({ redis: 'redis://127.0.0.1:1', bus: { enabled: false } }).bus).toBeUndefined();
  });

  it('reads CACHE_INVALIDATION_* from the environment (bare numbers are seconds)', () => {
    const o = tieredCacheOptionsFromEnv({ CACHE_INVALIDATION_BATCH_SIZE: '50', CACHE_INVALIDATION_TIMEOUT: '1.5', CACHE_INVALIDATION_ENABLED: 'false' });
    expect(o.invalidation).toEqual({ batchSize: 50, maxDelay: 1500 });
    expect(o.bus).toBe(false);
    expect(() => tieredCacheOptionsFromEnv({ CACHE_INVALIDATION_BATCH_SIZE: 'x' })).toThrow(/CACHE_INVALIDATION_BATCH_SIZE/);
  });
});

describe('event-name globs', () => {
  it('matches like EventEmitter2 wildcards', () => {
    const one = compileEventPattern('property.*');
    expect(one('property.updated')).toBe(true);
    expect(one('property')).toBe(false);
    expect(one('property.a.b')).toBe(false);
    expect(one('score.updated')).toBe(false);
    const many = compileEventPattern('property.**');
    expect(many('property.a.b')).toBe(true);
    expect(many('property')).toBe(true);
    expect(compileEventPattern('**.updated')('a.b.updated')).toBe(true);
    expect(compileEventPattern('property.updated')('property.updated')).toBe(true);
    expect(eventName(['property', 'updated'])).toBe('property.updated');
  });
});

describe('bus wire format', () => {
  it('round-trips and rejects malformed, foreign-version and oversized messages', () => {
    const raw = encodeBusMessage('me', { type: 'delete', keys: ['a'] });
    expect(decodeBusMessage(raw, 1000)).toEqual({ v: 1, src: 'me', change: { type: 'delete', keys: ['a'] } });
    expect(decodeBusMessage(raw, 10)).toBeUndefined();
    for (const bad of ['nope', 'null', '{}', '{"v":2,"src":"x","change":{"type":"clear"}}', '{"v":1,"src":"x","change":{"type":"delete","keys":[1]}}', '{"v":1,"src":"x","change":{"type":"delete","keys":[]}}', '{"v":1,"src":"x","change":{"type":"evil"}}', '{"v":1,"src":"","change":{"type":"clear"}}']) {
      expect(decodeBusMessage(bad, 1000)).toBeUndefined();
    }
  });

  it('keeps the byTag mark of a tag-driven delete on the wire', () => {
    const change: CacheChange = { type: 'delete', keys: ['a'], byTag: true };
    expect(decodeBusMessage(encodeBusMessage('me', change), 1000)?.change).toEqual(change);
    expect(decodeBusMessage(encodeBusMessage('me', { type: 'overwrite', keys: ['a'] }), 1000)?.change).toEqual({ type: 'overwrite', keys: ['a'] });
  });

  it('the outbox coalesces and collapses into one clear past its bound', () => {
    const box = new BusOutbox(4);
    box.add({ type: 'overwrite', keys: ['a', 'b', 'c'] });
    box.add({ type: 'delete', keys: ['a'] });
    box.add({ type: 'delete', keys: ['b'], byTag: true });
    box.add({ type: 'overwrite', keys: ['a', 'b'] });
    box.add({ type: 'tags', tags: ['t'] });
    // Each key once, under the strongest reason (delete > tag-driven delete > overwrite): receivers count only deletes.
    expect(box.take()).toEqual([
      { type: 'delete', keys: ['a'] },
      { type: 'delete', keys: ['b'], byTag: true },
      { type: 'overwrite', keys: ['c'] },
      { type: 'tags', tags: ['t'] },
    ]);
    box.add({ type: 'delete', keys: ['1', '2', '3', '4', '5'] });
    expect(box.take()).toEqual([{ type: 'clear' }]);
    expect(box.collapsed).toBe(1);
    expect(box.size).toBe(0);
  });
});
