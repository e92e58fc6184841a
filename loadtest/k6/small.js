// The periodic small requests of many sensors (stats, dstats, health, sequence, files), as fast
// as they go: measures per-request overhead. Fails on any non-2xx. DURATION, VUS.
import { small, summary as sum, thresholds } from './lib.js';

export const options = {
  vus: parseInt(__ENV.VUS || '8', 10),
  duration: __ENV.DURATION || '20s',
  thresholds,
  summaryTrendStats: ['med', 'p(99)', 'max'],
};

export default function () {
  small();
}

export function handleSummary(data) {
  return sum(data);
}
