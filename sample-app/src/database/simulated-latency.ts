/**
 * Simulated latencies of the original design: property lookup/search 150 ms, lead scoring 200 ms, market analysis
 * 100 ms. Added by every backend (a local PostgreSQL answers in well under a millisecond), so that what the cache
 * saves stays visible in the demo.
 */
export const LATENCY_MS = { property: 150, search: 150, score: 200, market: 100 };

export const simulateLatency = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
