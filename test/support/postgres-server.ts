/**
 * A real PostgreSQL server of its own for one test file: initdb in a temp dir, a free loopback port, never the
 * machine's 5432. The implementation is plain JS in bench/core/postgres-server.js, so the benchmarks (which run
 * without ts-jest) start their server with the same code; see that file for how it runs (as root, process group).
 */
export { PostgresServer } from '../../bench/core/postgres-server';
