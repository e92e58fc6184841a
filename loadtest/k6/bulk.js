// Realistic bulk ingest: every VU is one sensor (its own credentials and node name) sending
// capture's ~1 MB session bulks back to back, alternating plain and gzip (GZIP=only|never to
// fix one). Fails on any non-2xx. DURATION (default 20s), VUS (default 8).
import { bulk, constantVus, loadBodies, summary as sum } from './lib.js';

const bodies = loadBodies();
const mode = __ENV.GZIP || 'mixed';

export const options = constantVus();

export default function () {
  const gz = mode === 'only' || (mode === 'mixed' && __ITER % 2 === 1);
  bulk(bodies, gz);
}

export function handleSummary(data) {
  return sum(data);
}
