// Realistic bulk ingest: every VU is one sensor (its own credentials and node name) sending
// capture's ~1 MB session bulks back to back, alternating plain and gzip (GZIP=only|never to
// fix one). Fails on any non-2xx. DURATION (default 20s), VUS (default 8).
import { bulk, loadBodies, summary as sum, thresholds } from './lib.js';

const bodies = loadBodies();
const mode = __ENV.GZIP || 'mixed';

export const options = {
  vus: parseInt(__ENV.VUS || '8', 10),
  duration: __ENV.DURATION || '20s',
  thresholds,
  summaryTrendStats: ['med', 'p(99)', 'max'],
};

export default function () {
  const gz = mode === 'only' || (mode === 'mixed' && __ITER % 2 === 1);
  bulk(bodies, gz);
}

export function handleSummary(data) {
  return sum(data);
}
