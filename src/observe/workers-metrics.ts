/**
 * Prometheus metrics in the multi-process mode: the connections live in the workers, so
 * the primary's /metrics adds up each worker's registry (asked over IPC with
 * server.queryWorkers) and its own, the way prom-client's AggregatorRegistry does for
 * node:cluster: counters and gauges are summed unless a metric names another aggregator.
 */

import type { Registry } from 'prom-client';
import type { Server } from '../server/server.js';
import { loadProm } from './deps.js';

/** The query topic a worker answers with its registry's metrics. */
export const METRICS_TOPIC = 'heartline.metrics';

/**
 * A registry for the primary: its own metrics plus every online worker's, merged on each
 * scrape. A worker that does not answer in time is left out of that scrape.
 */
export function workersRegistry(server: Server): Registry {
  const prom = loadProm();
  class WorkersRegistry extends prom.Registry {
    override async metrics(): Promise<string> {
      const own = await this.getMetricsAsJSON();
      const workers = (await server.queryWorkers(METRICS_TOPIC)) as object[];
      return prom.AggregatorRegistry.aggregate([own, ...workers]).metrics();
    }
  }
  return new WorkersRegistry();
}

/** In a worker: answers the primary's metrics query with `registry`. */
export function answerMetrics(server: Server, registry: Registry): void {
  server.answerPrimary(METRICS_TOPIC, () => registry.getMetricsAsJSON());
}
